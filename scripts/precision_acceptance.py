#!/usr/bin/python3
"""Issue 16's acceptance rule over results/precision/summary.csv: bf16 is acceptable where
every paired difference (bf16 run minus its fp32 run, same seed) of test accuracy, NLL, ECE
and fitted temperature is within the fp32 runs' own seed spread (their sample standard
deviation over seeds). Writes results/precision/acceptance.md. Standard library only.

    /usr/bin/python3 scripts/precision_acceptance.py [results/precision/summary.csv]
"""
import csv
import datetime
import math
import os
import subprocess
import sys

METRICS = [("test_accuracy", "test accuracy, points", 100.0, "{:+.2f}", "{:.2f}"),
           ("test_nll", "test NLL", 1.0, "{:+.4f}", "{:.4f}"),
           ("test_ece", "test ECE, points", 100.0, "{:+.2f}", "{:.2f}"),
           ("temperature", "fitted T", 1.0, "{:+.3f}", "{:.3f}")]


def mean(v):
    return sum(v) / len(v)


def sd(v):
    m = mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "results/precision/summary.csv"
    rows = list(csv.DictReader(open(path)))
    runs = {}
    for r in rows:
        if not r["seed"]:
            continue  # the pipeline's own teachers (one seed)
        runs.setdefault((r["regime"], r["run"]), {})[int(r["seed"])] = r
    pairs = []
    for (regime, run) in runs:
        if run.endswith("_bf16") and (regime, run[:-5]) in runs:
            pairs.append((regime, run[:-5], run))
        elif run == "bf16" and (regime, "fp32") in runs:
            pairs.append((regime, "fp32", run))
    lines, outside = [], []
    for regime, a, b in pairs:
        fp32, bf16 = runs[(regime, a)], runs[(regime, b)]
        seeds = sorted(set(fp32) & set(bf16))
        for key, label, scale, fmt_d, fmt_v in METRICS:
            base = [scale * float(fp32[s][key]) for s in seeds]
            diff = [scale * (float(bf16[s][key]) - float(fp32[s][key])) for s in seeds]
            spread = sd(base)
            ok = abs(mean(diff)) <= spread
            if not ok:
                outside.append(f"{regime}/{b} − {a}: {label}")
            lines.append(f"| {regime} | {b} − {a} | {label} | {fmt_v.format(mean(base))} | {fmt_v.format(spread)} | "
                         f"{fmt_d.format(mean(diff))} ± {fmt_v.format(sd(diff))} | {'within' if ok else '**outside**'} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = os.path.join(os.path.dirname(path), "acceptance.md")
    with open(out + ".tmp", "w") as f:
        f.write("# bf16 against fp32: within the fp32 seed spread?\n\n")
        f.write(f"Produced by `/usr/bin/python3 scripts/precision_acceptance.py {path}` at commit {commit} on {when}, "
                f"from `{path}` (written by `kdtrain run -c configs/precision.ini`, seeds {', '.join(map(str, seeds))}). "
                "The rule (issue 16): bf16 is acceptable where the mean paired difference (bf16 run minus the fp32 run "
                "of the same seed) is within the fp32 runs' seed spread, their sample standard deviation over seeds. "
                "Whether a difference is beyond seed noise by a paired t-test is in summary.md.\n\n")
        f.write("| regime | pair | measure | fp32 mean | fp32 seed sd | bf16 − fp32, mean ± sd | within the spread? |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        f.write("\n".join(lines) + "\n\n")
        if outside:
            f.write(f"{len(outside)} of {len(lines)} differences are outside the fp32 seed spread: " + "; ".join(outside) +
                    ". By this rule bf16 is not indistinguishable from fp32 everywhere.\n")
        else:
            f.write(f"All {len(lines)} differences are within the fp32 seed spread.\n")
    os.replace(out + ".tmp", out)
    print(out)


if __name__ == "__main__":
    main()
