#!/usr/bin/env bash
# results/kd-losses: every distillation loss (kl, reverse_kl, js, dkd, lsk) on the three regimes
# of the main job, each at the temperature and weights chosen on validation, three seeds paired
# with the students alone; and a PyTorch CNN as the teacher of the small student through
# distill.teacher_logits, against kdtrain's MLP teacher.
#
#   scripts/kd-losses.sh [--no-cnn]
#
# Stage 1: kdtrain run -c configs/kd-losses-tune.ini (seed 1, the grid) -> results/kd-losses/tuning
# Choice:  scripts/kd_losses_select.py -> configs/kd-losses.ini (highest validation accuracy per
#          regime and loss; the test split is never read for choosing)
# Stage 2: kdtrain run -c configs/kd-losses.ini (seeds 1, 2, 3) -> results/kd-losses
#
# The CNN teacher's logits on every training row (data/torch-cnn-teacher/cnn-train.h5) are written by
#   /usr/bin/python3 scripts/export_torch_logits.py --train --epochs 10 --threads 1 --out data/torch-cnn-teacher
# when missing (Debian's python3-torch: scripts/bootstrap.sh --reference). --no-cnn leaves the
# CNN runs out of both stages. Runs go to runs/fashion-mnist beside the main job's, whose teachers
# and students alone are reused. Needs /usr/bin/python3 for the choice (standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."
kdtrain=build/kdtrain
[ -x "$kdtrain" ] || scripts/build.sh build >/dev/null
cnn=1
for arg in "$@"; do
  case "$arg" in
    --no-cnn) cnn=0 ;;
    *) echo "kd-losses.sh: unknown option '$arg' (expected --no-cnn)" >&2; exit 2 ;;
  esac
done

tune=configs/kd-losses-tune.ini
if [ "$cnn" = 1 ]; then
  if [ ! -f data/torch-cnn-teacher/cnn-train.h5 ]; then
    echo "kd-losses.sh: training the PyTorch CNN teacher (data/torch-cnn-teacher/cnn-train.h5)" >&2
    /usr/bin/python3 scripts/export_torch_logits.py --train --epochs 10 --threads 1 --out data/torch-cnn-teacher --force
  fi
else
  mkdir -p build/kd-losses
  grep -v '^run\.cnn_' "$tune" > build/kd-losses/kd-losses-tune.ini
  tune=build/kd-losses/kd-losses-tune.ini
fi

$kdtrain run -c "$tune"
/usr/bin/python3 scripts/kd_losses_select.py "$tune" results/kd-losses/tuning/summary.csv configs/kd-losses.ini
$kdtrain run -c configs/kd-losses.ini
echo "kd-losses.sh: results/kd-losses/summary.md (choices: configs/kd-losses.ini)" >&2
