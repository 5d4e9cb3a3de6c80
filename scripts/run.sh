#!/usr/bin/env bash
# The main job: installs what is missing, builds kdtrain, and runs the whole
# Fashion-MNIST pipeline (configs/fashion-mnist.ini): imports the data from Debian's
# dataset-fashion-mnist package, trains the teacher, then each distillation regime's
# students alone and distilled over three seeds, calibrates every model, and writes
# results/fashion-mnist/summary.md with its reliability diagrams. Runs go to
# runs/fashion-mnist/; finished runs are reused when the job is started again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh --data
scripts/build.sh build
build/kdtrain run -c configs/fashion-mnist.ini
echo "run.sh: done; see results/fashion-mnist/summary.md"
