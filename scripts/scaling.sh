#!/usr/bin/env bash
# What docs/SCALING.md stands on, measured on this machine in one go, and the projection
# to N machines computed from it (scripts/scaling_projection.py):
#   1. the teacher (configs/teacher.ini, 784-1200-1200-10, batch 128) trained for two
#      epochs on Fashion-MNIST with train.shards = 2, as one process on 2 threads, as one
#      process on 1 thread, and as `mpirun -np 2` ranks of 1 thread (and, for what the
#      shards cost, one process on 2 threads with train.shards = 1); the second epoch's
#      time, and the ranks' time in the gradients' exchange (train.log);
#   2. one exchange of the teacher's gradients (2,395,210 floats) on loopback:
#      bench_allreduce -np 2, MPI_Allreduce against kdtrain's ordered sum, S = 2 and 6;
#   3. the training step's compute at every batch a machine would hold (bench_train,
#      teacher, 2 threads, 2 to 1024 rows).
# Writes results/scaling/measured.csv, steps.csv and README.md (command, commit, date,
# machine load). Needs data/fashion-mnist.h5 and a build with MPI; about 5 minutes on an
# otherwise idle machine.
#   scripts/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/fashion-mnist.h5 ] || { echo "scaling.sh: data/fashion-mnist.h5 is missing (scripts/bootstrap.sh --data)" >&2; exit 1; }
scripts/build.sh build >/dev/null
[ -x build/bench/bench_allreduce ] || { echo "scaling.sh: build/bench/bench_allreduce is missing: kdtrain was built without MPI" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=results/scaling
mkdir -p "$out"
load() { awk '{print $1}' /proc/loadavg; }
started_load=$(load)

# 1. the teacher's epoch, three ways
teacher="-c configs/teacher.ini --quiet --set run.dir=$work --set train.epochs=2 --set train.shards=2"
epoch2() { sed -n 3p "$1/metrics.csv" | cut -d, -f10; }
echo "== teacher, one process, 2 threads, the whole batch at once (train.shards = 1)" >&2
build/kdtrain train $teacher --set run.name=p1t2s1 --set train.threads=2 --set train.shards=1 >/dev/null
echo "== teacher, one process, 2 threads" >&2
build/kdtrain train $teacher --set run.name=p1t2 --set train.threads=2 >/dev/null
echo "== teacher, one process, 1 thread" >&2
build/kdtrain train $teacher --set run.name=p1t1 --set train.threads=1 >/dev/null
echo "== teacher, mpirun -np 2, 1 thread a rank" >&2
mpirun -np 2 build/kdtrain train $teacher --set run.name=p2t1 --set train.threads=1 >/dev/null
exchange=$(grep 'exchange:' "$work/p2t1/train.log" | tail -1 | awk '{print $2}')
{
  echo "what,seconds"
  echo "teacher_epoch_1proc_2threads_1shard,$(epoch2 "$work/p1t2s1")"
  echo "teacher_epoch_1proc_2threads,$(epoch2 "$work/p1t2")"
  echo "teacher_epoch_1proc_1thread,$(epoch2 "$work/p1t1")"
  echo "teacher_epoch_2ranks_1thread,$(epoch2 "$work/p2t1")"
  echo "teacher_epoch_2ranks_exchange,$exchange"
  echo "teacher_steps_per_epoch,$(grep -o 'epochs of [0-9]* batches' "$work/p1t2/train.log" | awk '{print $3}')"
} >"$work/measured.csv"

# 2. one exchange on loopback
for s in 2 6; do
  echo "== bench_allreduce -np 2 --shards $s" >&2
  mpirun -np 2 build/bench/bench_allreduce --shards "$s" --repeat 30 >"$work/ar$s.txt"
  awk -v s="$s" '/^allreduce_ms/ { printf "allreduce_np2_S%s_ms,%s\n", s, $2 } /^ordered_ms/ { printf "ordered_np2_S%s_ms,%s\n", s, $2 }
                 /^ordered_equals_serial/ { printf "ordered_np2_S%s_equals_one_process,%s\n", s, $2 }' "$work/ar$s.txt" >>"$work/measured.csv"
done

# 3. the step's compute at each batch a machine holds
echo "rows,samples_per_second" >"$work/steps.csv"
for b in 2 4 8 16 32 64 128 256 512 1024; do
  steps=$(( b < 64 ? 400 : 200 ))
  echo "== bench_train teacher, batch $b, 2 threads" >&2
  v=$(build/bench/bench_train --model teacher --batch "$b" --steps "$steps" --threads 2 | awk 'NR == 1 {print $2}')
  echo "$b,$v" >>"$work/steps.csv"
done

cp "$work/measured.csv" "$work/steps.csv" "$out/"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo "+changes")
python3 scripts/scaling_projection.py "$out/measured.csv" "$out/steps.csv" \
  --header "Made by \`scripts/scaling.sh\` at commit $commit on $(date -u +%Y-%m-%d) ($(nproc) cores, load $started_load at the start, $(load) at the end)." \
  >"$out/README.md"
cat "$out/README.md"
