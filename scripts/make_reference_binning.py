#!/usr/bin/python3
"""Writes tests/data/calib-binning.h5: references for kdtrain's non-parametric
calibrators (src/calib/binning.c, isotonic.c) and ensemble temperature scaling
(src/calib/ensemble_temperature.c), computed without kdtrain's code.

Two cases, each a fitting split and a held-out test split of float32 logits and int32
labels from a deliberately over-confident model with
a quarter of its labels uniform noise (so that ETS's uniform weight is not 0):
  /main  n = 500 fit + 300 test, C = 5, logits in general position;
  /ties  n = 500 fit + 200 test, C = 3, logits rounded to 0.5 in [-1, 1], so that
         p takes a few dozen values: ties in isotonic regression, p on bin edges.
Per case, the expected test-set probabilities (float64, (n_test, C)) and fitted values:
  isotonic/        sklearn.isotonic.IsotonicRegression(out_of_bounds='clip', y_min=0,
                   y_max=1, increasing=True) per class on (p_k, 1[y = k]), rows
                   renormalised (all-zero rows uniform); objective: the one-vs-rest
                   squared error on the fitting split (sklearn's predictions there);
  histogram/       numpy from the definition: 15 equal-width bins, bin m holds
                   m/M < p <= (m+1)/M (np.searchsorted on the edges m/M), p = 0 in the
                   first; the positive fraction, the midpoint for an empty bin;
  scaling_binning/ the split (Fisher-Yates with xoshiro256** seeded by SplitMix64,
                   re-implemented here from the algorithms' definitions), Platt (a, b)
                   per class by scipy.optimize.minimize (trust-exact) polished by
                   scipy.optimize.root on the gradient (|gradient| < 1e-13) on the first half, 15 equal-mass bins of g on the second half (edges the
                   midpoints at ranks floor(j m / B), repeated edges dropped, the last 1),
                   each bin's value the mean of g in it;
  ets/             T by scipy.optimize.minimize_scalar (bounded, xatol 1e-12) on the
                   NLL, the weights by SLSQP on the simplex (ftol 1e-16), the NLL there
                   and at w = (1, 0, 0).
Probabilities are worked in float64 from the float32 logits; the softmax takes math.exp
(glibc's exp, as the C code) and sums the classes in order, so p matches kdtrain's bit
for bit and the bin edges and ties fall the same way. Needs Debian's python3-numpy,
python3-scipy, python3-sklearn and python3-h5py; run once and commit the output:

    /usr/bin/python3 scripts/make_reference_binning.py tests/data/calib-binning.h5
"""
import math
import sys

import h5py
import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.optimize import root as root_find
from scipy.special import logsumexp
from sklearn.isotonic import IsotonicRegression

SEED = 20261206
BINS = 15
SPLIT_SEED = 7
PLATT_EPS = 1e-12
M64 = (1 << 64) - 1


# ---- kdtrain's split rule, from the definitions of SplitMix64 and xoshiro256** ----

def splitmix64_at(key, counter):
    z = (key + (counter + 1) * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro256:
    def __init__(self, seed):
        self.s = [splitmix64_at(seed, i) for i in range(4)]

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        limit = M64 - M64 % n  # draws >= the largest multiple of n are retried
        while True:
            r = self.next()
            if r < limit:
                return r % n


def split_order(n, seed):
    rng = Xoshiro256(seed)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64)


# ---- shared pieces ----

def softmax(z32, T=1.0):
    """Row softmax of float32 logits in float64: max subtracted, glibc exp, classes summed in order."""
    z = z32.astype(np.float64)
    d = z - z.max(axis=1, keepdims=True)
    e = np.array([[math.exp(v / T) if T != 1.0 else math.exp(v) for v in row] for row in d])
    s = np.zeros(len(z))
    for c in range(z.shape[1]):
        s = s + e[:, c]
    return e / s[:, None]


def renormalise(q):
    total = q.sum(axis=1, keepdims=True)
    uniform = np.full_like(q, 1.0 / q.shape[1])
    return np.divide(q, total, out=uniform, where=total != 0)


def ovr_squared_error(q, y):
    onehot = np.eye(q.shape[1])[y]
    return float(((q - onehot) ** 2).sum(axis=1).mean())


# ---- the calibrators ----

def isotonic(p_fit, y_fit, p_test):
    C = p_fit.shape[1]
    fit, test = np.zeros_like(p_fit), np.zeros_like(p_test)
    for k in range(C):
        ir = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1, increasing=True)
        ir.fit(p_fit[:, k], (y_fit == k).astype(np.float64))
        fit[:, k] = ir.predict(p_fit[:, k])
        test[:, k] = ir.predict(p_test[:, k])
    return renormalise(test), ovr_squared_error(fit, y_fit)


def equal_width_bin(p, M):
    edges = np.arange(M + 1) / M
    return np.clip(np.searchsorted(edges, p, side="left") - 1, 0, M - 1)


def histogram(p_fit, y_fit, p_test, M):
    C = p_fit.shape[1]
    values = np.zeros((C, M))
    for k in range(C):
        b = equal_width_bin(p_fit[:, k], M)
        count = np.bincount(b, minlength=M)
        positives = np.bincount(b, weights=(y_fit == k).astype(np.float64), minlength=M)
        mid = (np.arange(M) + 0.5) / M
        values[k] = np.where(count > 0, positives / np.maximum(count, 1), mid)
    fit = np.stack([values[k][equal_width_bin(p_fit[:, k], M)] for k in range(C)], axis=1)
    test = np.stack([values[k][equal_width_bin(p_test[:, k], M)] for k in range(C)], axis=1)
    return renormalise(test), values, ovr_squared_error(fit, y_fit)


def logit(p):
    q = np.clip(p, PLATT_EPS, 1 - PLATT_EPS)
    return np.log(q / (1 - q))


def platt_fit(x, y):
    def loss(t):
        s = t[0] * x + t[1]
        return np.mean(np.logaddexp(0.0, s) - y * s)

    def grad(t):
        r = 1 / (1 + np.exp(-(t[0] * x + t[1]))) - y
        return np.array([np.mean(r * x), np.mean(r)])

    def hess(t):
        sg = 1 / (1 + np.exp(-(t[0] * x + t[1])))
        v = sg * (1 - sg)
        return np.array([[np.mean(v * x * x), np.mean(v * x)], [np.mean(v * x), np.mean(v)]])

    # trust-exact stops once the loss change is below its rounding (|gradient| ~ 1e-11);
    # scipy's root finder on the gradient then takes it to the rounding of the gradient
    res = minimize(loss, np.array([1.0, 0.0]), jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-13})
    assert np.max(np.abs(grad(res.x))) < 1e-8, res
    root = root_find(grad, res.x, jac=hess, method="hybr", tol=1e-15)
    assert np.max(np.abs(grad(root.x))) < 1e-13, root
    return root.x


def sigmoid_platt(ab, p):
    return 1 / (1 + np.exp(-(ab[0] * logit(p) + ab[1])))


def scaling_binning(p_fit, y_fit, p_test, B, order):
    n, C = p_fit.shape
    n1 = n // 2
    first, second = order[:n1], order[n1:]
    platt = np.zeros((C, 2))
    fit, test = np.zeros_like(p_fit), np.zeros_like(p_test)
    for k in range(C):
        platt[k] = platt_fit(logit(p_fit[first, k]), (y_fit[first] == k).astype(np.float64))
        s = np.sort(sigmoid_platt(platt[k], p_fit[second, k]))
        m = len(s)
        candidates = [(s[j * m // B - 1] + s[j * m // B]) / 2 for j in range(1, B)] + [1.0]
        edges = []
        for e in candidates:
            if not edges or e > edges[-1]:
                edges.append(e)
        edges = np.array(edges)
        b = np.searchsorted(edges, s, side="left")  # upper edges inclusive
        count = np.bincount(b, minlength=len(edges))
        total = np.bincount(b, weights=s, minlength=len(edges))
        lower = np.concatenate([[0.0], edges[:-1]])
        values = np.where(count > 0, total / np.maximum(count, 1), (lower + edges) / 2)
        fit[:, k] = values[np.searchsorted(edges, sigmoid_platt(platt[k], p_fit[:, k]), side="left")]
        test[:, k] = values[np.searchsorted(edges, sigmoid_platt(platt[k], p_test[:, k]), side="left")]
    return renormalise(test), platt, ovr_squared_error(fit, y_fit)


def ets(z_fit, y_fit, z_test):
    n, C = z_fit.shape
    z = z_fit.astype(np.float64)

    def nll_T(T):
        zt = z / T
        return float(np.mean(logsumexp(zt, axis=1) - zt[np.arange(n), y_fit]))

    T = minimize_scalar(nll_T, bounds=(0.05, 20.0), method="bounded", options={"xatol": 1e-12}).x
    q = np.stack([softmax(z_fit, T)[np.arange(n), y_fit], softmax(z_fit)[np.arange(n), y_fit], np.full(n, 1.0 / C)],
                 axis=1)

    def f(w):
        return -np.mean(np.log(q @ w))

    def g(w):
        return -np.mean(q / (q @ w)[:, None], axis=0)

    res = minimize(f, np.full(3, 1 / 3), jac=g, method="SLSQP", bounds=[(0, 1)] * 3,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(3)}],
                   options={"ftol": 1e-16, "maxiter": 1000})
    w = np.clip(res.x, 0, None)
    w = w / w.sum()
    grad = g(w)
    kkt = max(abs(grad[j] + 1) if w[j] > 1e-9 else max(0.0, -1 - grad[j]) for j in range(3))
    assert kkt < 1e-7, (res, grad)
    test = w[0] * softmax(z_test, T) + w[1] * softmax(z_test) + w[2] / C
    return test, T, w, f(w), f(np.array([1.0, 0.0, 0.0]))


# ---- data ----

def make_case(rng, n_fit, n_test, C, ties):
    """An over-confident model: true logits u, labels from softmax(u) (a quarter replaced by
    uniform ones), model logits ~ 2.2 u."""
    n = n_fit + n_test
    u = rng.normal(0.0, 1.2, (n, C)) + np.linspace(-0.6, 0.6, C)
    pu = np.exp(u - u.max(axis=1, keepdims=True))
    pu /= pu.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(C, p=row) for row in pu], dtype=np.int32)
    noisy = rng.random(n) < 0.25  # a quarter of the labels uniform: a floor under p that T alone cannot give
    y[noisy] = rng.integers(0, C, noisy.sum())
    z = 2.2 * u + rng.normal(0.0, 0.4, (n, C))
    if ties:
        z = np.clip(np.round(z / 2 * 2) / 2, -1.0, 1.0)  # halves of z / 2 in [-1, 1]
    z = z.astype(np.float32)
    return z[:n_fit], y[:n_fit], z[n_fit:], y[n_fit:]


def write_case(f, name, z_fit, y_fit, z_test, y_test):
    g = f.create_group(name)
    g["fit/logits"], g["fit/labels"] = z_fit, y_fit
    g["test/logits"], g["test/labels"] = z_test, y_test
    p_fit, p_test = softmax(z_fit), softmax(z_test)

    probs, objective = isotonic(p_fit, y_fit, p_test)
    g["isotonic/test_probs"], g["isotonic/objective"] = probs, objective

    probs, values, objective = histogram(p_fit, y_fit, p_test, BINS)
    g["histogram/test_probs"], g["histogram/values"], g["histogram/objective"] = probs, values, objective

    order = split_order(len(y_fit), SPLIT_SEED)
    probs, platt, objective = scaling_binning(p_fit, y_fit, p_test, BINS, order)
    g["scaling_binning/order"], g["scaling_binning/platt"] = order, platt
    g["scaling_binning/test_probs"], g["scaling_binning/objective"] = probs, objective

    probs, T, w, nll, nll_T = ets(z_fit, y_fit, z_test)
    g["ets/test_probs"], g["ets/temperature"], g["ets/weights"] = probs, T, w
    g["ets/nll"], g["ets/nll_temperature_only"] = nll, nll_T
    distinct = len(np.unique(p_fit, axis=0))
    print(f"{name}: T {T:.6f}, weights {w}, NLL {nll:.6f} (T alone {nll_T:.6f}), {distinct} distinct rows of p")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/calib-binning.h5"
    rng = np.random.default_rng(SEED)
    with h5py.File(out, "w") as f:
        f.attrs["bins"] = BINS
        f.attrs["split_seed"] = SPLIT_SEED
        write_case(f, "main", *make_case(rng, 500, 300, 5, ties=False))
        write_case(f, "ties", *make_case(rng, 500, 200, 3, ties=True))


if __name__ == "__main__":
    main()
