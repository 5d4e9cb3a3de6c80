#!/usr/bin/python3
"""Stage 2 of the loss experiment (scripts/kd-losses.sh): reads stage 1's summary.csv and its
pipeline file, chooses for every regime and every loss the grid point with the highest validation
accuracy (ties: the lower validation NLL; the test columns are never read), and writes the
three-seed pipeline file that trains those choices beside the students alone.

    /usr/bin/python3 scripts/kd_losses_select.py TUNE.ini TUNE-summary.csv OUT.ini

A run's loss is its name up to "_t" (kl_t4_a09 -> kl, cnn_kl_t2_a05 -> cnn_kl); runs without
"_t" (alone, alone_jitter) are the baselines and are kept as they are. Needs only the standard
library. The output is written to OUT.ini.tmp and renamed.
"""
import configparser
import csv
import os
import re
import sys


def main(tune_ini, summary_csv, out_ini):
    cfg = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    cfg.optionxform = str
    cfg.read(tune_ini)
    rows = list(csv.DictReader(open(summary_csv)))
    chosen = {}  # regime -> {loss: (name, val_acc, val_nll)}
    for r in rows:
        if r["kind"] != "distill":
            continue
        m = re.match(r"^(.*?)_t[0-9]", r["run"])
        if not m:
            sys.exit(f"kd_losses_select: {summary_csv}: run {r['run']} has no _tT in its name")
        loss = m.group(1)
        key = (float(r["val_accuracy"]), -float(r["val_nll"]))
        best = chosen.setdefault(r["regime"], {}).get(loss)
        if best is None or key > best[1]:
            chosen[r["regime"]][loss] = (r["run"], key)

    out = []
    out.append("# Issue 15's loss experiment, stage 2: written by scripts/kd_losses_select.py from")
    out.append(f"# {summary_csv} (stage 1, configs/kd-losses-tune.ini, seed 1): for every regime and loss the")
    out.append("# grid point with the highest validation accuracy (ties: lower validation NLL), trained on three")
    out.append("# seeds and paired with the students alone. Do not edit: scripts/kd-losses.sh writes it again.")
    out.append("#   kdtrain run -c configs/kd-losses.ini")
    p = cfg["pipeline"]
    out.append("[pipeline]")
    out.append("title = Distillation losses on Fashion-MNIST: every loss at its validation-chosen T and weights")
    for k in ("data", "prepare", "runs"):
        out.append(f"{k} = {p[k]}")
    out.append("out = results/kd-losses")
    out.append("seeds = 1,2,3")
    out.append(f"teacher = {p['teacher']}")
    for section in cfg.sections():
        if not section.startswith("regime."):
            continue
        rid = section.split(".", 1)[1]
        reg = cfg[section]
        out.append("")
        out.append(f"[{section}]")
        out.append(f"title = {reg['title']}")
        picks = chosen.get(rid, {})
        note = "; ".join(f"{loss}: {name}" for loss, (name, _) in sorted(picks.items()))
        out.append(f"note = Chosen on validation accuracy with seed 1 (results/kd-losses/tuning): {note}.")
        if "teacher" in reg:
            out.append(f"teacher = {reg['teacher']}")
        baselines = [k[4:] for k in reg if k.startswith("run.") and not re.match(r"^.*?_t[0-9]", k[4:])]
        for b in baselines:
            out.append(f"run.{b} = {reg['run.' + b]}")
        for loss, (name, _) in sorted(picks.items()):
            out.append(f"run.{name} = {reg['run.' + name]}")
        base = "alone_jitter" if "alone_jitter" in baselines else baselines[0]
        compares = [f"{name} - {base}" for loss, (name, _) in sorted(picks.items())]
        if "kl" in picks and "cnn_kl" in picks:
            compares.append(f"{picks['cnn_kl'][0]} - {picks['kl'][0]}")
        out.append("compare = " + ", ".join(compares))
    tmp = out_ini + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, out_ini)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
