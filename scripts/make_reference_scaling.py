#!/usr/bin/python3
"""Writes tests/data/calib-scaling.h5: a scipy reference for kdtrain's scaling family
(src/calib/scaling.h): vector scaling, matrix scaling and Dirichlet calibration with
the ODIR regulariser of Kull et al. (2019),

    objective = mean_i NLL_i + lambda / (C (C-1)) sum_{k != j} W_kj^2 + mu / C sum_k b_k^2,

each minimised by scipy.optimize.minimize (L-BFGS-B with the analytic gradient, from
the identity W = I, b = 0), then polished by Newton steps with numpy's exact Hessian
(least-squares solves, so the steps stay orthogonal to the null directions of an
unpenalised model and keep the identity's sums sum_k W_kj = 1, sum_k b_k = 0), and
checked: max |gradient| < 1e-12.

Two cases of miscalibrated logits: a random linear model's logits t, labels drawn from
softmax(t), and observed logits z = s t M + c + noise (over-confident, biased, classes mixed by
M = I + 0.35 N(0, 1)), float32.
case4: n = 600, C = 4; case7: n = 400, C = 7. For each, and a held-out test set of the
same model, the fixture holds for each method and strength (lambda, mu): the
parameters, objective, NLL and the test set's calibrated probabilities, in float64.
It also holds a 5-fold cross-validation of mu = lambda over kdtrain's default grid for
Dirichlet calibration on case4, with the folds of kd_scaling_folds reimplemented here
from its documented rule (rows ordered by SplitMix64 output kd_rng_at(seed, row), the
row at rank t in fold t % k): the mean held-out NLL per strength and the choice.

Run once with Debian's python3-numpy, python3-scipy and python3-h5py, and commit:

    /usr/bin/python3 scripts/make_reference_scaling.py tests/data/calib-scaling.h5
"""
import sys

import h5py
import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp

SEED = 20261214
GRID = [0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
CV_SEED = 12345
CV_FOLDS = 5
MASK = (1 << 64) - 1


def rng_at(key, counter):
    """kd_rng_at: output `counter` of SplitMix64 seeded with `key` (python integers)."""
    z = (key + (counter + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def folds(n, k, seed):
    order = sorted(range(n), key=lambda i: (rng_at(seed, i), i))
    fold = np.empty(n, dtype=np.int32)
    for t, i in enumerate(order):
        fold[i] = t % k
    return fold


def make_case(rng, n, n_test, C):
    d = 5
    A = rng.normal(size=(d, C))
    bias = rng.normal(scale=0.5, size=C)
    mix = np.eye(C) + 0.35 * rng.normal(size=(C, C))  # classes confused: off-diagonal W helps

    def draw(m):
        h = rng.normal(size=(m, d))
        t = h @ A + bias
        p = np.exp(log_softmax(t, axis=1))
        y = np.array([rng.choice(C, p=pi) for pi in p], dtype=np.int32)
        z = 2.2 * t @ mix + 0.4 * np.arange(C) / C + rng.normal(scale=0.3, size=(m, C))
        return z.astype(np.float32), y

    z, y = draw(n)
    zt, _ = draw(n_test)
    return z, y, zt


def features(kind, z):
    x = z.astype(np.float64)
    return log_softmax(x, axis=1) if kind == "dirichlet" else x


class Model:
    """theta: vector [w (C), b (C)]; matrix (C, C+1) rows [W_k, b_k], as in scaling_internal.h."""

    def __init__(self, kind, x, y, lam, mu):
        self.kind, self.x, self.y, self.lam, self.mu = kind, x, y, lam, mu
        self.n, self.C = x.shape
        self.xt = np.hstack([x, np.ones((self.n, 1))])

    def identity(self):
        C = self.C
        if self.kind == "vector":
            return np.concatenate([np.ones(C), np.zeros(C)])
        return np.hstack([np.eye(C), np.zeros((C, 1))]).ravel()

    def logits(self, theta, x=None):
        x = self.x if x is None else x
        C = self.C
        if self.kind == "vector":
            return x * theta[:C] + theta[C:]
        T = theta.reshape(C, C + 1)
        return x @ T[:, :C].T + T[:, C]

    def penalty(self, theta):
        if self.kind == "vector":
            return 0.0, np.zeros_like(theta), np.zeros_like(theta)
        C = self.C
        T = theta.reshape(C, C + 1)
        a, c = self.lam / (C * (C - 1)), self.mu / C
        offmask = np.ones((C, C + 1))
        offmask[np.arange(C), np.arange(C)] = 0.0
        coef = offmask * a
        coef[:, C] = c
        value = np.sum(coef * T * T)
        return value, (2 * coef * T).ravel(), (2 * coef).ravel()

    def objective(self, theta):
        u = self.logits(theta)
        lse = logsumexp(u, axis=1)
        nll = np.mean(lse - u[np.arange(self.n), self.y])
        r = np.exp(u - lse[:, None])
        r[np.arange(self.n), self.y] -= 1.0
        C = self.C
        if self.kind == "vector":
            g = np.concatenate([np.mean(r * self.x, axis=0), np.mean(r, axis=0)])
        else:
            g = (r.T @ self.xt / self.n).ravel()
        pv, pg, _ = self.penalty(theta)
        return nll + pv, g + pg, nll

    def hessian(self, theta):
        u = self.logits(theta)
        p = np.exp(log_softmax(u, axis=1))
        C, n = self.C, self.n
        if self.kind == "vector":
            J = np.zeros((n, C, 2 * C))  # du_k / dtheta
            J[:, np.arange(C), np.arange(C)] = self.x
            J[:, np.arange(C), C + np.arange(C)] = 1.0
        else:
            J = np.zeros((n, C, C * (C + 1)))
            for k in range(C):
                J[:, k, k * (C + 1):(k + 1) * (C + 1)] = self.xt
        S = np.einsum("ik,kl->ikl", p, np.eye(C)) - np.einsum("ik,il->ikl", p, p)
        H = np.einsum("ikp,ikl,ilq->pq", J, S, J) / n
        _, _, pd = self.penalty(theta)
        return H + np.diag(pd)


def fit(model, start=None):
    theta = model.identity() if start is None else start.copy()
    res = minimize(lambda t: model.objective(t)[:2], theta, jac=True, method="L-BFGS-B",
                   options=dict(gtol=1e-12, ftol=0.0, maxiter=20000, maxcor=30))
    theta = res.x
    for _ in range(20):  # Newton polish: min-norm steps, orthogonal to any null direction
        f, g, _ = model.objective(theta)
        if np.max(np.abs(g)) < 1e-13:
            break
        step = np.linalg.lstsq(model.hessian(theta), -g, rcond=1e-12)[0]
        theta = theta + step
    f, g, nll = model.objective(theta)
    gmax = np.max(np.abs(g))
    assert gmax < 1e-12, gmax
    return theta, f, nll, gmax


def split_params(kind, theta, C):
    if kind == "vector":
        return theta[:C], theta[C:]
    T = theta.reshape(C, C + 1)
    return T[:, :C].copy(), T[:, C].copy()


def main(out_path):
    rng = np.random.default_rng(SEED)
    strengths = {"vector": [(0.0, 0.0)],
                 "matrix": [(0.0, 0.0), (1e-2, 1e-2), (0.5, 0.1)],
                 "dirichlet": [(1e-3, 1e-3), (0.5, 0.1)]}
    with h5py.File(out_path, "w") as f:
        f.attrs["cv_seed"] = np.uint64(CV_SEED)
        f.attrs["cv_folds"] = np.int32(CV_FOLDS)
        cases = {}
        for name, n, n_test, C in [("case4", 600, 120, 4), ("case7", 400, 100, 7)]:
            z, y, zt = make_case(rng, n, n_test, C)
            cases[name] = (z, y, C)
            g = f.create_group(name)
            g["logits"], g["labels"], g["test_logits"] = z, y, zt
            for kind, pairs in strengths.items():
                for i, (lam, mu) in enumerate(pairs):
                    model = Model(kind, features(kind, z), y, lam, mu)
                    theta, obj, nll, gmax = fit(model)
                    W, b = split_params(kind, theta, C)
                    u = model.logits(theta, features(kind, zt))
                    h = g.create_group(f"{kind}/{i}")
                    h.attrs["lambda"], h.attrs["mu"] = lam, mu
                    h.attrs["objective"], h.attrs["nll"], h.attrs["gradient_norm"] = obj, nll, gmax
                    h["weight"], h["bias"] = W, b
                    h["test_probabilities"] = np.exp(log_softmax(u, axis=1))
                    print(f"{name} {kind} lambda={lam} mu={mu}: objective {obj:.15f} |g| {gmax:.1e}")
        # cross-validation of mu = lambda for Dirichlet calibration on case4
        z, y, C = cases["case4"]
        x = features("dirichlet", z)
        fold = folds(len(y), CV_FOLDS, CV_SEED)
        curve = np.zeros(len(GRID))
        for k in range(CV_FOLDS):
            tr, ho = fold != k, fold == k
            for gi, lam in enumerate(GRID):
                model = Model("dirichlet", x[tr], y[tr], lam, lam)
                theta = fit(model)[0]
                u = model.logits(theta, x[ho])
                curve[gi] += np.mean(logsumexp(u, axis=1) - u[np.arange(ho.sum()), y[ho]]) / CV_FOLDS
        best = int(np.argmin(curve))
        order = np.sort(curve)
        print("CV curve", curve, "choice", GRID[best], "margin", order[1] - order[0])
        cv = f.create_group("cv")
        cv["grid"], cv["cv_nll"], cv["folds"] = np.array(GRID), curve, fold
        cv.attrs["chosen"] = GRID[best]
        cv.attrs["margin"] = order[1] - order[0]


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/calib-scaling.h5")
