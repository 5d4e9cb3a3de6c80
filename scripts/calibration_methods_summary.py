#!/usr/bin/python3
"""Writes results/calibration-methods/summary.md from the calibration.json of every
model folder there (scripts/calibration-methods.sh runs it; only Python's standard
library). One table of test NLL and ECE per model and method, one of each method's
paired difference from temperature scaling with its bootstrap interval, and the
counts of models on which a method beat or lost to temperature scaling."""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "results/calibration-methods"
order = ["teacher", "small-alone", "small-kd_t4", "scarce-alone_jitter", "scarce-distilled", "large-alone",
         "large-distilled", "torch-cnn"]
models = [m for m in order if os.path.isfile(os.path.join(root, m, "calibration.json"))]
models += sorted(m for m in os.listdir(root) if m not in models and os.path.isfile(os.path.join(root, m, "calibration.json")))
reports = {m: json.load(open(os.path.join(root, m, "calibration.json"))) for m in models}
if not reports:
    sys.exit("calibration_methods_summary.py: no calibration.json under " + root)
methods = [x["calibrator"]["method"] for x in reports[models[0]]["methods"]]
first = reports[models[0]]
out = []
w = out.append
w("# Every calibrator on real models\n")
commits = sorted({r["commit"] for r in reports.values()})
dates = sorted({r["date"] for r in reports.values()})
w(f"Produced by `scripts/calibration-methods.sh` (each model: `kdtrain eval --logits` of its validation and test "
  f"splits, then `kdtrain calibrate --logits VAL --test TEST --method all`, the exact command in each report) at "
  f"commit {', '.join(commits)} on {dates[0]}{' to ' + dates[-1] if len(dates) > 1 else ''}; bootstrap "
  f"{first['bootstrap']} resamples (seed {first['seed']}), noise floor {first['noise_draws']} label draws, "
  f"{first['bins']} bins. Every method is fitted on the 5,000 validation rows and judged on the 10,000 test rows of "
  f"Fashion-MNIST. Each model's folder has the full report (`calibration.md`: every metric with its interval and "
  f"noise floor, the fitted parameters, reliability diagrams).\n")
w("Models: the main job's teacher and seed-1 students (`runs/fashion-mnist/`, `scripts/run.sh`; see "
  "results/fashion-mnist/summary.md), and a small PyTorch CNN (`scripts/export_torch_logits.py`, defaults: 3 epochs).\n")

def fmt(v, scale=1.0, d=4):
    return "–" if v is None else f"{scale * v:.{d}f}"

w("## Test NLL (ECE %) per model and method\n")
w("| model | T | uncalibrated | " + " | ".join(methods) + " |")
w("|---|---|---|" + "---|" * len(methods))
for m in models:
    r = reports[m]
    T = r["methods"][0]["calibrator"]["temperature"]
    cells = [f"{fmt(r['uncalibrated']['test']['nll'])} ({fmt(r['uncalibrated']['test']['ece'], 100, 2)})"]
    best = min(x["test"]["nll"] for x in r["methods"])
    for x in r["methods"]:
        c = f"{fmt(x['test']['nll'])} ({fmt(x['test']['ece'], 100, 2)})"
        cells.append(f"**{c}**" if x["test"]["nll"] == best else c)
    w(f"| {m} | {T:.3f} | " + " | ".join(cells) + " |")
w("\nBold: the lowest test NLL of the row. T: temperature scaling's fitted T (above 1: the model was overconfident "
  "on validation; below 1: underconfident).\n")

w("## Against temperature scaling: test NLL, paired\n")
w("Each method's test NLL minus temperature scaling's on the same bootstrap resamples, with its 95 % interval; "
  "accuracy change in points against the uncalibrated model in brackets where a method moved predictions.\n")
w("| model | " + " | ".join(methods[1:]) + " |")
w("|---|" + "---|" * (len(methods) - 1))
tally = {x: [0, 0, 0] for x in methods[1:]}
for m in models:
    r = reports[m]
    acc0 = r["uncalibrated"]["test"]["accuracy"]
    cells = []
    for x in r["methods"][1:]:
        d = x["minus_temperature"]["nll"]
        name = x["calibrator"]["method"]
        if d["high"] < 0:
            tally[name][0] += 1
        elif d["low"] > 0:
            tally[name][2] += 1
        else:
            tally[name][1] += 1
        c = f"{d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
        if x["changed_predictions"]:
            c += f" ({100 * (x['test']['accuracy'] - acc0):+.2f})"
        cells.append(c)
    w(f"| {m} | " + " | ".join(cells) + " |")
ece_tally = {x: [0, 0, 0] for x in methods[1:]}
for m in models:
    for x in reports[m]["methods"][1:]:
        d = x["minus_temperature"]["ece"]
        k = 0 if d["high"] < 0 else 2 if d["low"] > 0 else 1
        ece_tally[x["calibrator"]["method"]][k] += 1
w("\nOver the models, each method against temperature scaling, by the paired 95 % interval of the difference:\n")
w("| method | NLL lower | NLL: no difference | NLL higher | ECE lower | ECE: no difference | ECE higher |")
w("|---|---|---|---|---|---|---|")
for x in methods[1:]:
    b, s, l = tally[x]
    eb, es, el = ece_tally[x]
    w(f"| {x} | {b} | {s} | {l} | {eb} | {es} | {el} |")
w("")
w("## Test ECE against its noise floor\n")
w("A test ECE no larger than the 95th percentile of its noise floor (the ECE of labels drawn from the calibrated "
  "probabilities themselves) cannot be told from perfect calibration on 10,000 rows: ✓.\n")
w("| model | uncalibrated | " + " | ".join(methods) + " |")
w("|---|---|" + "---|" * len(methods))
for m in models:
    r = reports[m]
    def mark(t):
        return ("✓ " if t["ece"] <= t["ece_floor_p95"] else "") + f"{100 * t['ece']:.2f} / {100 * t['ece_floor_p95']:.2f}"
    w(f"| {m} | {mark(r['uncalibrated']['test'])} | " + " | ".join(mark(x["test"]) for x in r["methods"]) + " |")
w("\nCells: test ECE % / the 95th percentile of its noise floor %.\n")
with open(os.path.join(root, "summary.md.tmp"), "w") as f:
    f.write("\n".join(out) + "\n")
os.replace(os.path.join(root, "summary.md.tmp"), os.path.join(root, "summary.md"))
print(os.path.join(root, "summary.md"))
