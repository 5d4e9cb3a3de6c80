#!/usr/bin/python3
"""Writes tests/data/calib-metrics.h5: probability matrices, labels, and every metric
of src/calib/reliability.h computed independently in numpy from the definitions.

Cases (each /NAME/probs (n, C) float64, /NAME/labels (n) int32, /NAME/bins (1) int32,
/NAME/expected/METRIC () float64, METRIC as kd_metric_name):
  mixed     n = 300, C = 4, M = 15: random rows, some rows repeated (ties in confidence),
            one row (1, 0, 0, 0), rows with 0 and 1e-300 entries, a confidence of exactly
            a bin edge (0.6 = 9/15), a label of probability 0 (NLL clipped at 1e-15);
  quantised n = 301, C = 3, M = 15: confidences on a 0.05 grid (many ties across the
            equal-mass bin edges; 301 is not a multiple of 15);
  tiny      n = 7, C = 4, M = 10: more bins than samples (empty equal-mass bins, bins of
            one sample, which the debiased estimator counts as 0);
  binary    n = 300, C = 2, M = 15 (Brier checked against sklearn's binary brier_score_loss).

Definitions (reliability.h): top label = first arg max; equal-width bin of p: the b
(0-based) with b/M < p <= (b+1)/M, the edges being the doubles m/M (p = 0 in bin 0);
equal-mass bins: the samples sorted stably by confidence (ties in row order), bin b
holding ranks [floor(b n / M), floor((b+1) n / M)); NLL = mean -log max(p_y, 1e-15)
(checked against sklearn.metrics.log_loss, which clips at 1e-15 and renormalises,
where no p_y is clipped).

Packages: Debian's python3-numpy, python3-h5py, python3-sklearn. Run once and commit:

    /usr/bin/python3 scripts/make_reference_metrics.py tests/data/calib-metrics.h5
"""
import sys

import h5py
import numpy as np
from sklearn.metrics import brier_score_loss, log_loss

SEED = 20260214


def width_bin(p, M):
    edges = np.arange(1, M + 1, dtype=np.float64) / M  # each m/M rounded to a double
    return np.searchsorted(edges, p, side="left")       # first b with p <= edges[b]


def binned_ece(conf, hit, M):
    b = width_bin(conf, M)
    n = len(conf)
    ece, mce = 0.0, 0.0
    for k in range(M):
        sel = b == k
        if not sel.any():
            continue
        gap = abs(hit[sel].mean() - conf[sel].mean())
        ece += sel.sum() / n * gap
        mce = max(mce, gap)
    return ece, mce


def equal_mass_bins(conf, M):
    n = len(conf)
    order = np.argsort(conf, kind="stable")
    return order, [order[(b * n) // M:((b + 1) * n) // M] for b in range(M)]


def metrics(p, y, M):
    n, C = p.shape
    top = np.argmax(p, axis=1)
    conf = p[np.arange(n), top]
    hit = (top == y).astype(np.float64)
    py = p[np.arange(n), y]
    onehot = np.eye(C)[y]
    out = {
        "accuracy": hit.mean(),
        "nll": np.mean(-np.log(np.maximum(py, 1e-15))),
        "brier": np.mean(np.sum((p - onehot) ** 2, axis=1)),
    }
    out["ece"], out["mce"] = binned_ece(conf, hit, M)
    order, bins = equal_mass_bins(conf, M)
    ece_m, sq, debiased = 0.0, 0.0, 0.0
    for idx in bins:
        nb = len(idx)
        if nb == 0:
            continue
        acc, cb = hit[idx].mean(), conf[idx].mean()
        ece_m += nb / n * abs(acc - cb)
        sq += nb / n * (acc - cb) ** 2
        if nb >= 2:
            debiased += nb / n * ((cb - acc) ** 2 - acc * (1 - acc) / (nb - 1))
    out["ece_equal_mass"] = ece_m
    out["rms_ce"] = np.sqrt(sq)
    out["debiased_ce"] = np.sqrt(max(debiased, 0.0))
    out["ks_ce"] = np.max(np.abs(np.cumsum(conf[order] - hit[order]) / n))
    out["classwise_ece"] = np.mean([binned_ece(p[:, k], (y == k).astype(np.float64), M)[0] for k in range(C)])

    # cross-checks against sklearn where its definition coincides
    if np.all(py >= 1e-15):
        ref = log_loss(y, p, labels=np.arange(C))
        assert abs(ref - out["nll"]) < 1e-9, (ref, out["nll"])
    if C == 2:
        ref = 2 * brier_score_loss(y == 1, p[:, 1])  # binary Brier counts one class
        assert abs(ref - out["brier"]) < 1e-12, (ref, out["brier"])
    return out


def softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def draw_labels(rng, p):
    u = rng.random(len(p))
    return np.minimum((np.cumsum(p, axis=1) < u[:, None]).sum(axis=1), p.shape[1] - 1).astype(np.int32)


def case_mixed(rng):
    n, C = 300, 4
    p = softmax_rows(rng.normal(0, 2.0, (n, C)))
    y = draw_labels(rng, p)
    p[10:20] = p[0]             # ten rows tied with row 0 (labels differ)
    p[20] = [1.0, 0.0, 0.0, 0.0]  # confidence exactly 1, and zeros
    y[20] = 0
    p[21] = [1.0, 0.0, 0.0, 0.0]
    y[21] = 2                   # p_y = 0: NLL clipped at 1e-15
    p[22] = [1.0 - 1e-300, 1e-300, 0.0, 0.0]  # 1 - 1e-300 is 1.0 in double
    p[23] = [0.6, 0.2, 0.2, 0.0]  # 0.6 = 9/15: on a bin edge, in bin 9 (0-based 8)
    p[24] = [0.25, 0.25, 0.25, 0.25]  # all tied: top label 0
    p[25] = [0.2, 0.4, 0.4, 0.0]      # tied top: the first
    p = p / p.sum(axis=1, keepdims=True)
    return p, y, 15


def case_quantised(rng):
    n, C = 301, 3
    c = rng.integers(8, 21, n) * 0.05   # top confidence in {0.4, ..., 1.0}
    c = np.minimum(c, 1.0)
    rest = (1 - c)[:, None] * np.array([0.6, 0.4])[None, :]
    p = np.concatenate([c[:, None], rest], axis=1)
    for i in range(n):                   # the top label at a random place
        p[i] = np.roll(p[i], rng.integers(0, C))
    y = draw_labels(rng, p)
    return p, y, 15


def case_tiny(rng):
    p = softmax_rows(rng.normal(0, 1.5, (7, 4)))
    y = rng.integers(0, 4, 7).astype(np.int32)
    return p, y, 10


def case_binary(rng):
    p1 = rng.random(300)
    p = np.stack([1 - p1, p1], axis=1)
    y = (rng.random(300) < p1 ** 1.3).astype(np.int32)  # a little miscalibrated
    return p, y, 15


def main(path):
    rng = np.random.default_rng(SEED)
    with h5py.File(path, "w") as f:
        for name, make in [("mixed", case_mixed), ("quantised", case_quantised), ("tiny", case_tiny),
                           ("binary", case_binary)]:
            p, y, M = make(rng)
            assert np.all(p >= 0) and np.all(p <= 1) and np.allclose(p.sum(axis=1), 1, atol=1e-12)
            g = f.create_group(name)
            g["probs"] = p.astype(np.float64)
            g["labels"] = y.astype(np.int32)
            g["bins"] = np.array([M], dtype=np.int32)
            for key, value in metrics(p, y, M).items():
                g["expected/" + key] = np.float64(value)
            print(name, {k: round(float(v), 6) for k, v in metrics(p, y, M).items()})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/calib-metrics.h5")
