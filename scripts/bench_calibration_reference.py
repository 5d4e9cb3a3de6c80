#!/usr/bin/python3
"""The reference side of kdtrain's calibrator benchmark (scripts/bench.sh).

Fits every calibrator kdtrain has, the way a Python user would with scipy and
sklearn, on the logits bench_calibrators dumped (PREFIX.logits.f32, PREFIX.labels.i32,
PREFIX.shape), and prints `name value` lines: the fit time in ms (best of --repeat) and
the objective reached, for bench.sh to put beside kdtrain's.

  temperature      scipy.optimize.minimize_scalar (bounded Brent) on NLL(T)
  vector, matrix,  scipy.optimize.minimize, L-BFGS-B with the analytic gradient,
  dirichlet        default tolerances; matrix and Dirichlet with the ODIR penalty at
                   the fixed strength --lam (lambda = mu), no cross-validation
  histogram        numpy: equal-width bins per class, label means
  isotonic         sklearn.isotonic.IsotonicRegression per class (one-vs-rest)
  scaling-binning  kdtrain's split of the rows (the permutation drawn before the clock
                   starts), Platt per class by scipy.optimize.minimize (L-BFGS-B), then
                   numpy equal-mass bins of its outputs
  ets              T as above, then the simplex weights by scipy SLSQP

Needs Debian's python3-numpy, python3-scipy and python3-sklearn.
Usage: scripts/bench_calibration_reference.py --dump PREFIX [--lam 1e-3] [--repeat 3] [--threads N]
"""
import argparse
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--methods", default="temperature,vector,matrix,dirichlet,histogram,isotonic,scaling-binning,ets")
    args = ap.parse_args()
    if args.threads > 0:
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[v] = str(args.threads)
    try:
        import numpy as np
        from scipy import optimize, special
        from sklearn.isotonic import IsotonicRegression
    except ImportError as e:
        sys.exit(f"bench_calibration_reference.py: {e}; install python3-numpy python3-scipy python3-sklearn")

    with open(args.dump + ".shape") as f:
        n, C = map(int, f.read().split())
    z = np.fromfile(args.dump + ".logits.f32", dtype=np.float32).reshape(n, C).astype(np.float64)
    y = np.fromfile(args.dump + ".labels.i32", dtype=np.int32).astype(np.int64)
    onehot = np.zeros((n, C))
    onehot[np.arange(n), y] = 1.0
    tag = f"{n}x{C}"

    def nll_of_logits(u):
        return float(np.mean(special.logsumexp(u, axis=1) - u[np.arange(n), y]))

    def fit_temperature():
        r = optimize.minimize_scalar(lambda t: nll_of_logits(z / t), bounds=(1e-2, 1e2), method="bounded",
                                     options={"xatol": 1e-8})
        return r.x, r.fun

    def scaling(features, kind, lam):
        F = features

        def unpack(theta):
            if kind == "vector":
                return np.diag(theta[:C]), theta[C:]
            return theta[: C * C].reshape(C, C), theta[C * C:]

        def objective(theta):
            W, b = unpack(theta)
            u = F @ W.T + b
            lse = special.logsumexp(u, axis=1)
            nll = np.mean(lse - u[np.arange(n), y])
            g_u = (np.exp(u - lse[:, None]) - onehot) / n
            gW = g_u.T @ F
            gb = g_u.sum(axis=0)
            if kind == "vector":
                return nll, np.concatenate([np.diag(gW), gb])
            off = W - np.diag(np.diag(W))
            pen = lam / (C * (C - 1)) * np.sum(off ** 2) + lam / C * np.sum(b ** 2)
            gW = gW + 2 * lam / (C * (C - 1)) * off
            gb = gb + 2 * lam / C * b
            return nll + pen, np.concatenate([gW.ravel(), gb])

        theta0 = np.concatenate([np.ones(C), np.zeros(C)]) if kind == "vector" else \
            np.concatenate([np.eye(C).ravel(), np.zeros(C)])
        r = optimize.minimize(objective, theta0, jac=True, method="L-BFGS-B")
        return r.fun

    def softmax(u):
        return np.exp(u - special.logsumexp(u, axis=1, keepdims=True))

    def histogram():
        p = softmax(z)
        se = 0.0
        for k in range(C):
            b = np.clip(np.ceil(p[:, k] * args.bins).astype(int) - 1, 0, args.bins - 1)
            counts = np.bincount(b, minlength=args.bins)
            hits = np.bincount(b, weights=onehot[:, k], minlength=args.bins)
            value = np.where(counts > 0, hits / np.maximum(counts, 1), (np.arange(args.bins) + 0.5) / args.bins)
            se += np.sum((value[b] - onehot[:, k]) ** 2)
        return se / n

    def isotonic():
        p = softmax(z)
        se = 0.0
        for k in range(C):
            ir = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, k], onehot[:, k])
            se += np.sum((ir.predict(p[:, k]) - onehot[:, k]) ** 2)
        return se / n

    def scaling_binning(order):
        # kdtrain's definition (src/calib/binning.h): Platt on the first half of a seeded
        # permutation, equal-mass bins of its outputs on the second half (upper edges the
        # midpoints at ranks floor(j m / B), repeats dropped, the last 1), each bin's value
        # the mean of g in it; the objective is the one-vs-rest squared error on all rows.
        p = np.clip(softmax(z), 1e-12, 1 - 1e-12)
        first, second = order[: n // 2], order[n // 2:]
        se = 0.0
        for k in range(C):
            x = np.log(p[:, k]) - np.log1p(-p[:, k])
            t = onehot[:, k]
            xf, tf = x[first], t[first]

            def loss(ab):
                s = ab[0] * xf + ab[1]
                val = np.mean(np.logaddexp(0, s) - tf * s)
                q = special.expit(s) - tf
                return val, np.array([np.mean(q * xf), np.mean(q)])

            ab = optimize.minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
            g = np.sort(special.expit(ab[0] * x[second] + ab[1]))
            m = len(g)
            candidates = np.append((g[np.arange(1, args.bins) * m // args.bins - 1] +
                                    g[np.arange(1, args.bins) * m // args.bins]) / 2, 1.0)
            edges = candidates[np.concatenate([[True], np.diff(candidates) > 0])]
            b = np.searchsorted(edges, g, side="left")
            count = np.bincount(b, minlength=len(edges))
            lower = np.concatenate([[0.0], edges[:-1]])
            value = np.where(count > 0, np.bincount(b, weights=g, minlength=len(edges)) / np.maximum(count, 1),
                             (lower + edges) / 2)
            f = value[np.searchsorted(edges, special.expit(ab[0] * x + ab[1]), side="left")]
            se += np.sum((f - t) ** 2)
        return se / n

    def ets():
        T, _ = fit_temperature()
        q = np.stack([softmax(z / T)[np.arange(n), y], softmax(z)[np.arange(n), y], np.full(n, 1.0 / C)], axis=1)
        r = optimize.minimize(lambda w: -np.mean(np.log(q @ w)), np.array([1.0, 0.0, 0.0]) * 0.98 + 0.02 / 3,
                              jac=lambda w: -np.mean(q / (q @ w)[:, None], axis=0), method="SLSQP",
                              bounds=[(0, 1)] * 3, constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1}])
        return r.fun

    logp = z - special.logsumexp(z, axis=1, keepdims=True)
    split = None
    if "scaling-binning" in args.methods.split(","):
        # kdtrain's permutation of the rows (seed 0), re-implemented in make_reference_binning.py;
        # drawn before the clock starts, as kdtrain's costs microseconds
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from make_reference_binning import split_order
        split = split_order(n, 0)
    runners = {
        "temperature": lambda: fit_temperature()[1],
        "vector": lambda: scaling(z, "vector", 0.0),
        "matrix": lambda: scaling(z, "matrix", args.lam),
        "dirichlet": lambda: scaling(logp, "dirichlet", args.lam),
        "histogram": histogram,
        "isotonic": isotonic,
        "scaling-binning": lambda: scaling_binning(split),
        "ets": ets,
    }
    for name in args.methods.split(","):
        best, objective = float("inf"), None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            objective = runners[name]()
            best = min(best, time.perf_counter() - t0)
        key = name.replace("-", "_")
        print(f"ref_cal_{key}_ms_{tag} {1e3 * best:.3f}")
        print(f"ref_cal_{key}_obj_{tag} {objective:.10f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
