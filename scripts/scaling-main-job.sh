#!/usr/bin/env bash
# The main job (configs/fashion-mnist.ini: 26 runs, what scripts/run.sh runs) timed from
# empty run folders as one process (its threads: the idle cores, 2 here) and then as
# `mpirun -np 2` (the runs handed out over the ranks, 1 thread each), one right after
# the other with the same build; each job's metrics compared with the committed
# results/fashion-mnist/summary.csv. Writes results/scaling/main-job.md.
#   scripts/scaling-main-job.sh
# Needs data/fashion-mnist.h5 and a build with MPI; about 20 minutes on 2 idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/fashion-mnist.h5 ] || { echo "scaling-main-job.sh: data/fashion-mnist.h5 is missing (scripts/bootstrap.sh --data)" >&2; exit 1; }
scripts/build.sh build >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
load() { awk '{print $1}' /proc/loadavg; }
declare -A wall loadv
for how in serial ranks2; do
  ini="$work/main-$how.ini"
  sed -e "s|^runs = .*|runs = $work/runs-$how|" -e "s|^out = .*|out = $work/out-$how|" configs/fashion-mnist.ini >"$ini"
  loadv[$how]=$(load)
  echo "== the main job, $how (load $(load))" >&2
  start=$(date +%s.%N)
  if [ "$how" = serial ]; then
    build/kdtrain run --quiet -c "$ini" 2>"$work/log-$how" || { tail -20 "$work/log-$how" >&2; exit 1; }
  else
    mpirun -np 2 build/kdtrain run --quiet -c "$ini" 2>"$work/log-$how" || { tail -20 "$work/log-$how" >&2; exit 1; }
  fi
  wall[$how]=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  echo "   ${wall[$how]} s" >&2
done
# Every run's metrics (val_accuracy .. test_ece_at_T) against the committed summary.csv.
compare() {
  awk -F, '
    FNR == 1 { names = $0; next }
    FILENAME == ARGV[1] { for (i = 7; i <= 16; i++) old[$1 "/" $2 "/" $4, i] = $i; next }
    { key = $1 "/" $2 "/" $4; rows++; same = 1
      for (i = 7; i <= 16; i++) {
        d = $i - old[key, i]; if (d < 0) d = -d
        if (d > 0) same = 0
        if (d > worst) { worst = d; where = key; split(names, h, ","); what = h[i]; a = old[key, i]; b = $i }
      }
      identical += same
      if (!same) differ = differ (differ == "" ? "" : ", ") key }
    END {
      if (worst == 0) printf "all %d runs: every metric equal to the committed summary.csv", rows
      else printf "%d of %d runs with every metric equal (not: %s); largest difference %.6g, %s of %s (committed %s, here %s)", identical, rows, differ, worst, what, where, a, b
    }' results/fashion-mnist/summary.csv "$1"
}
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo "+changes")
ratio=$(awk -v a="${wall[serial]}" -v b="${wall[ranks2]}" 'BEGIN { printf "%.2f", a / b }')
{
  echo "# The main job as one process and over 2 ranks"
  echo
  echo "Made by \`scripts/scaling-main-job.sh\` at commit $commit on $(date -u +%Y-%m-%d), $(nproc) cores: the main job"
  echo "(\`configs/fashion-mnist.ini\`, 26 runs: 2 teachers, then 24 students alone and distilled over 3 seeds) from"
  echo "empty run folders, build and data ready, one job right after the other."
  echo
  echo "| how | wall clock (s) | load at the start | metrics against the committed results/fashion-mnist/summary.csv |"
  echo "| --- | --- | --- | --- |"
  echo "| \`kdtrain run\`, one process, threads: the idle cores | ${wall[serial]} | ${loadv[serial]} | $(compare "$work/out-serial/summary.csv") |"
  echo "| \`mpirun -np 2 kdtrain run\`, 1 thread a rank | ${wall[ranks2]} | ${loadv[ranks2]} | $(compare "$work/out-ranks2/summary.csv") |"
  echo
  echo "Over 2 ranks the job took 1/$ratio of the one-process time ($ratio× as fast). The load is the 1-minute"
  echo "average at a job's start: it still counts what ran just before (for the second job, the first)."
  echo
  echo "The ranks' own lines (which rank trained what, and each stage's time):"
  echo
  echo '```'
  grep -E '^\[rank [0-9]+\] ' "$work/log-ranks2" || true
  echo '```'
} >results/scaling/main-job.md
cat results/scaling/main-job.md
