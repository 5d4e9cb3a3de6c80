#!/usr/bin/env bash
# The main job (configs/fashion-mnist.ini, what scripts/run.sh runs) timed twice from
# empty run folders with the same build, one right after the other: in fp32 (every
# config's own train.precision) and with pipeline.precision = auto (bf16 where oneDNN
# runs it natively). The times are the pipeline's own ("kdtrain run: N s wall clock"),
# written with the machine's load to results/precision/timing.md.
#   scripts/precision-timing.sh [--order fp32,auto|auto,fp32]
# Needs data/fashion-mnist.h5 (scripts/bootstrap.sh --data, or scripts/run.sh once).
# Each job takes a few minutes to ten on 2 cores; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
order=fp32,auto
case "${1:-}" in
  --order) order="${2:?--order needs fp32,auto or auto,fp32}" ;;
  "") ;;
  *) echo "precision-timing.sh: unknown option '$1' (expected --order fp32,auto|auto,fp32)" >&2; exit 2 ;;
esac
[ -f data/fashion-mnist.h5 ] || { echo "precision-timing.sh: data/fashion-mnist.h5 is missing (scripts/bootstrap.sh --data)" >&2; exit 1; }
scripts/build.sh build >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
load() { echo $(( $(ps -e -o stat= | grep -c '^R') - 1 )); }
declare -A wall train rest loadv
for p in ${order//,/ }; do
  ini="$work/main-$p.ini"
  # The main job's file with its runs and reports in the scratch folder, and the precision.
  sed -e "s|^runs = .*|runs = $work/runs-$p|" -e "s|^out = .*|out = $work/out-$p|" configs/fashion-mnist.ini >"$ini"
  [ "$p" = fp32 ] || sed -i "s|^\[pipeline\]|[pipeline]\nprecision = $p|" "$ini"
  loadv[$p]=$(load)
  echo "== the main job, $p (competing load $(load))" >&2
  build/kdtrain run --quiet -c "$ini" 2>"$work/log-$p" || { tail -20 "$work/log-$p" >&2; exit 1; }
  line=$(grep '^kdtrain run: ' "$work/log-$p" | tail -1)
  echo "$line" >&2
  wall[$p]=$(echo "$line" | awk '{print $3}')
  train[$p]=$(echo "$line" | awk '{print $7}')
  rest[$p]=$(awk -v w="${wall[$p]}" -v t="${train[$p]}" 'BEGIN { printf "%.1f", w - t }')
done
# What the auto job's runs took, counted from their summary.json files.
took=$(grep -h '"precision"' "$work"/runs-auto/*/summary.json | sed 's/.*: "\(.*\)".*/\1/' | sort | uniq -c |
       awk '{ printf "%s%d %s", NR > 1 ? ", " : "", $1, $2 }')
reason=$(grep -h '"precision_reason"' "$work"/runs-auto/teacher/summary.json | head -1 | sed 's/.*: "\(.*\)".*/\1/')
out=results/precision/timing.md
mkdir -p results/precision
{
  echo "# The main job in fp32 and with precision = auto, timed"
  echo
  echo "Produced by \`scripts/precision-timing.sh --order $order\` at commit $(git rev-parse --short HEAD) on $(date -u '+%Y-%m-%d %H:%M UTC');"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(build/kdtrain info | grep '^bf16' | sed 's/^bf16 *//')."
  echo "Both jobs are configs/fashion-mnist.ini (the main job of scripts/run.sh) from empty run folders with"
  echo "the same build, one right after the other in the order above; times are the pipeline's own"
  echo "(\`kdtrain run: N s wall clock\`). The auto job's runs took: $took (the teacher's reason: $reason)."
  echo
  echo "| job | wall clock, s | training runs, s | evaluation, calibration, reports, s | competing load at start |"
  echo "|---|---|---|---|---|"
  for p in fp32 auto; do
    echo "| $p | ${wall[$p]} | ${train[$p]} | ${rest[$p]} | ${loadv[$p]} |"
  done
  echo
  echo "Speed-up of the whole job: $(awk -v a="${wall[fp32]}" -v b="${wall[auto]}" 'BEGIN { printf "%.2f", a / b }')× (target ≥ 1.5×);"
  echo "of its training runs: $(awk -v a="${train[fp32]}" -v b="${train[auto]}" 'BEGIN { printf "%.2f", a / b }')×."
  echo
  echo "The auto job's own report is in main-job-auto/ (its summary.md names the scratch pipeline file it ran)."
} >"$out.tmp"
rm -rf results/precision/main-job-auto.tmp
cp -r "$work/out-auto" results/precision/main-job-auto.tmp
rm -rf results/precision/main-job-auto
mv results/precision/main-job-auto.tmp results/precision/main-job-auto
mv "$out.tmp" "$out"
echo "precision-timing.sh: $out" >&2
