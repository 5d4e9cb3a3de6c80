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

# kdtrain train/distill print progress on stderr and the run folder on stdout.
teacher=$($kd train -c configs/teacher.ini)
$kd eval --model "$teacher"
student=$($kd train -c configs/student.ini)
$kd eval --model "$student"
distilled=$($kd distill -c configs/distill.ini --teacher "$teacher")
$kd eval --model "$distilled"
echo "run.sh: done: $teacher, $student, $distilled"
