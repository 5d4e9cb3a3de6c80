#!/usr/bin/env bash
# The main job: installs what is missing, builds kdtrain, imports Fashion-MNIST from
# Debian's dataset-fashion-mnist package, and trains on it: the teacher, the small
# student alone and the distilled student (configs/), each evaluated on the test split.
# Runs go to runs/ (a taken name gets a suffix; nothing is overwritten).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh --data
scripts/build.sh build
kd=build/kdtrain

if [ ! -f data/fashion-mnist.h5 ]; then
  $kd prepare fashion-mnist --out data/fashion-mnist.h5
fi

run_dir() { sed -n 's/.*-> \(.*\)$/\1/p' "$1" | head -n 1; }

$kd train -c configs/teacher.ini 2>&1 | tee runs-teacher.log
teacher=$(run_dir runs-teacher.log)
$kd eval --model "$teacher"
$kd train -c configs/student.ini 2>&1 | tee runs-student.log
$kd eval --model "$(run_dir runs-student.log)"
$kd distill -c configs/distill.ini --teacher "$teacher" 2>&1 | tee runs-distill.log
$kd eval --model "$(run_dir runs-distill.log)"
rm -f runs-teacher.log runs-student.log runs-distill.log
echo "run.sh: done; the run folders are listed above"
