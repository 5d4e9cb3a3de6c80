#!/usr/bin/env bash
# results/calibration-methods: every calibrator of `kdtrain calibrate --logits`
# compared on real models. For each model, its validation and test logits are
# written (kdtrain eval --logits, into data/logits/), then every method is fitted
# on validation and compared on test (--method all, the CLI's default bootstrap and
# noise-floor draws) into results/calibration-methods/NAME/.
#
#   scripts/calibration-methods.sh [RUNS_DIR]
#
# RUNS_DIR (default runs/fashion-mnist) holds the main job's runs (scripts/run.sh).
# The PyTorch CNN is included when data/torch-cnn/cnn-{val,test}.h5 exist
# (/usr/bin/python3 scripts/export_torch_logits.py writes them). The calibrated
# outputs (calibrated-test.h5, about 10 MB a model) stay out of git (.gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-runs/fashion-mnist}"
kdtrain=build/kdtrain
[ -x "$kdtrain" ] || scripts/build.sh build >/dev/null
out=results/calibration-methods
mkdir -p data/logits "$out"

# name  run folder (seed 1 of each regime's runs, and the teachers)
models=(
  "teacher teacher"
  "small-alone small-alone-s1"
  "small-kd_t4 small-kd_t4-s1"
  "scarce-alone_jitter scarce-alone_jitter-s1"
  "scarce-distilled scarce-distilled-s1"
  "large-alone large-alone-s1"
  "large-distilled large-distilled-s1"
)
for entry in "${models[@]}"; do
  set -- $entry
  name=$1 run="$runs/$2"
  if [ ! -d "$run" ]; then
    echo "calibration-methods.sh: $run: no such run (scripts/run.sh trains it); skipped" >&2
    continue
  fi
  for split in val test; do
    $kdtrain eval --model "$run" --split "$split" --no-temperature --force \
      --logits "data/logits/$name-$split.h5" --out "data/logits/$name-$split.json" >/dev/null
  done
  echo "== $name" >&2
  $kdtrain calibrate --logits "data/logits/$name-val.h5" --test "data/logits/$name-test.h5" \
    --method all --out "$out/$name" --force
done
if [ -f data/torch-cnn/cnn-val.h5 ] && [ -f data/torch-cnn/cnn-test.h5 ]; then
  echo "== torch-cnn" >&2
  $kdtrain calibrate --logits data/torch-cnn/cnn-val.h5 --test data/torch-cnn/cnn-test.h5 \
    --method all --out "$out/torch-cnn" --force
  # the same logits through numpy.save's files: the report's numbers must agree
  $kdtrain calibrate --logits data/torch-cnn/cnn-val-logits.npy --test data/torch-cnn/cnn-test-logits.npy \
    --method temperature --out "data/logits/torch-cnn-npy-check" --force >/dev/null
  /usr/bin/python3 - "$out/torch-cnn/calibration.json" data/logits/torch-cnn-npy-check/calibration.json <<'PY'
import json, sys
a, b = (json.load(open(p))["methods"][0] for p in sys.argv[1:3])
same = a["calibrator"]["temperature"] == b["calibrator"]["temperature"] and a["test"]["nll"] == b["test"]["nll"]
print(f"torch-cnn: the .npy files give T = {b['calibrator']['temperature']!r}, test NLL {b['test']['nll']!r}; "
      f"the HDF5 files {a['calibrator']['temperature']!r}, {a['test']['nll']!r}: {'the same' if same else 'DIFFERENT'}")
sys.exit(0 if same else 1)
PY
else
  echo "calibration-methods.sh: data/torch-cnn/cnn-{val,test}.h5 missing (scripts/export_torch_logits.py); the CNN is skipped" >&2
fi
/usr/bin/python3 scripts/calibration_methods_summary.py "$out"
echo "calibration-methods.sh: done; see $out/summary.md"
