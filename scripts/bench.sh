#!/usr/bin/env bash
# The side-by-side benchmark: kdtrain and the same work in PyTorch (Debian's
# python3-torch, through its oneDNN path when it has one), in one run, on this
# machine, with 1 and 2 threads. Prints a table of ratios and writes it to
# results/bench.md with the date, machine, commit and the competing CPU load.
# Then every calibrator of `kdtrain calibrate --logits` against scipy and sklearn
# fitting the same logits (scripts/bench_calibration_reference.py), written to
# results/bench-calibration.md.
#   scripts/bench.sh [--quick]        everything
#   scripts/bench.sh --calibration    the calibrators alone
set -euo pipefail
cd "$(dirname "$0")/.."

steps_teacher=200; steps_small=2000; pysteps=200; only_calibration=0
case "${1:-}" in
  --quick) steps_teacher=30; steps_small=300; pysteps=30 ;;
  --calibration) only_calibration=1 ;;
  "") ;;
  *) echo "bench.sh: unknown option '$1' (expected --quick or --calibration)" >&2; exit 2 ;;
esac

scripts/bootstrap.sh
scripts/build.sh build >/dev/null
b=build/bench
raw=$(mktemp)
trap 'rm -f "$raw" /tmp/kdbench-$$.*' EXIT
# Competing load: processes other than this benchmark running on a CPU right now.
load() { echo $(( $(ps -e -o stat= | grep -c '^R') - 1 )); }
value() { awk -v k="$1" '$1 == k { print $2; exit }' "$raw"; }

# Every calibrator on 10,000 x 10 and 50,000 x 100 logits, kdtrain and the
# scipy/sklearn reference on the same dumped logits, 2 threads each.
bench_calibrators() {
  local craw
  craw=$(mktemp)
  echo "load_cal $(load)" >>"$craw"
  for shape in "10000 10" "50000 100"; do
    set -- $shape
    echo "== calibrators on $1 x $2 logits" >&2
    $b/bench_calibrators --rows "$1" --classes "$2" --threads 2 --repeat 3 --dump /tmp/kdbench-$$.cal >>"$craw"
    if /usr/bin/python3 -c 'import scipy, sklearn' 2>/dev/null; then
      /usr/bin/python3 scripts/bench_calibration_reference.py --dump /tmp/kdbench-$$.cal --threads 2 \
        --repeat "$([ "$2" -gt 10 ] && echo 1 || echo 3)" >>"$craw"
    else
      echo "bench.sh: scipy/sklearn are not installed (scripts/bootstrap.sh --reference): the reference column stays empty" >&2
    fi
  done
  local out=results/bench-calibration.md
  cv() { awk -v k="$1" '$1 == k { print $2; exit }' "$craw"; }
  {
    echo "# kdtrain's calibrators against scipy and sklearn, side by side"
    echo
    echo "Produced by \`scripts/bench.sh --calibration\` (also part of \`scripts/bench.sh\`) at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "on $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//');"
    echo "2 threads each side; competing load when it started: $(cv load_cal) other running processes."
    echo "Logits: N x C with z ~ 4 N(0, 1) and labels drawn from softmax(z / 2) (bench/bench_calibrators.c), the same"
    echo "float32 values read by both sides. Reference: scripts/bench_calibration_reference.py (scipy.optimize with"
    echo "analytic gradients at its default tolerances, sklearn's IsotonicRegression, numpy). Matrix and Dirichlet at"
    echo "the fixed ODIR strength lambda = mu = 1e-3 on both sides; the rows marked CV are kdtrain's default fit with"
    echo "5-fold cross-validation over its grid, which the reference does not run. Times are the best of 3 (1 for"
    echo "the reference on 50,000 x 100). Objective: what the method minimises on the fitting data (NLL, NLL + ODIR"
    echo "penalty, or squared error of the one-vs-rest fits); lower is better, kdtrain's must not be higher."
    echo
    echo "| method | logits | kdtrain ms | reference ms | speed-up | kdtrain objective | reference objective |"
    echo "|---|---|---|---|---|---|---|"
    for tag in 10000x10 50000x100; do
      for m in temperature vector matrix matrix_cv dirichlet dirichlet_cv histogram isotonic scaling_binning ets; do
        local base=${m%_cv} k r ko ro
        k=$(cv kdtrain_cal_${m}_ms_$tag); ko=$(cv kdtrain_cal_${m}_obj_$tag)
        if [ "$m" = "$base" ]; then r=$(cv ref_cal_${m}_ms_$tag); ro=$(cv ref_cal_${m}_obj_$tag); else r=""; ro=""; fi
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "${m/_cv/ (CV)}" "${tag/x/ x }" "${k:-–}" "${r:-–}" \
          "$(awk -v a="$r" -v b="$k" 'BEGIN { if (a == "" || b == "" || b == 0) print "–"; else printf "%.1f×", a / b }')" \
          "${ko:-–}" "${ro:-–}"
      done
    done
    echo
    echo "Raw values:"
    echo
    echo '```'
    cat "$craw"
    echo '```'
  } >"$out.tmp"
  mv "$out.tmp" "$out"
  cat "$out"
  rm -f "$craw"
}

if [ "$only_calibration" -eq 1 ]; then
  bench_calibrators
  exit 0
fi

for t in 1 2; do
  echo "== $t thread(s)" >&2
  echo "load_t$t $(load)" >>"$raw"
  $b/bench_peak --threads "$t" >>"$raw" 2>/dev/null
  $b/bench_gemm --threads "$t" >>"$raw"
  $b/bench_train --model teacher --batch 128 --steps $steps_teacher --threads "$t" >>"$raw"
  $b/bench_train --model teacher --batch 256 --steps $((steps_teacher / 2)) --threads "$t" >>"$raw"
  $b/bench_train --model student --batch 128 --steps $steps_small --threads "$t" >>"$raw"
  $b/bench_train --model distill --batch 128 --steps $steps_small --threads "$t" >>"$raw"
  # bf16 (train.precision = bf16): where oneDNN has no bf16 product bench_train says so and prints nothing
  for m in teacher student distill; do
    steps=$steps_small; [ "$m" = teacher ] && steps=$steps_teacher
    $b/bench_train --model "$m" --batch 128 --steps "$steps" --threads "$t" --precision bf16 >>"$raw" || true
  done
  $b/bench_calibrate --threads "$t" --repeat 20 --dump /tmp/kdbench-$$ | grep '^kdtrain_' >>"$raw"
  if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    /usr/bin/python3 scripts/bench_pytorch.py --threads "$t" --steps $pysteps --logits /tmp/kdbench-$$ >>"$raw"
  else
    echo "bench.sh: PyTorch is not installed (apt-get install python3-torch): its column stays empty" >&2
  fi
done
# The shared-machine case: another process keeps one core busy.
echo "== with one core kept busy by another process" >&2
( while :; do :; done ) &
busy=$!
sleep 0.5
echo "load_busy $(load)" >>"$raw"
for t in 1 2; do
  $b/bench_train --model teacher --batch 128 --steps $((steps_teacher / 2)) --threads "$t" | sed "s/^kdtrain_/busy_/" >>"$raw"
  $b/bench_train --model student --batch 128 --steps $((steps_small / 2)) --threads "$t" | sed "s/^kdtrain_/busy_/" >>"$raw"
done
kill "$busy" 2>/dev/null || true
wait "$busy" 2>/dev/null || true

if [ -f data/fashion-mnist.h5 ]; then
  $b/bench_data --data data/fashion-mnist.h5 --naive-batches 5 | grep '^kdtrain_' >>"$raw"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "–"; else printf "%.2f", a / b }'; }
row() { # name, kdtrain value, pytorch value, unit, target
  printf '| %s | %s | %s | %s | %s |\n' "$1" "${2:-–}" "${3:-–}" "$(ratio "$2" "$3")" "$4"
}

out=results/bench.md
mkdir -p results
{
  echo "# kdtrain against PyTorch, side by side"
  echo
  echo "Produced by \`scripts/bench.sh\` at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) on $(date -u '+%Y-%m-%d %H:%M UTC');"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'),"
  echo "oneDNN $(build/kdtrain info | awk '/oneDNN/ {print $2}'), PyTorch $(value pytorch_version_t1 || true)$(value pytorch_version) ($(value pytorch_path) for its Linear layers)."
  echo "Competing load (other processes running on a CPU when each half started): $(value load_t1) before the 1-thread runs, $(value load_t2) before the 2-thread runs."
  echo "Training steps: synthetic data, AdamW/Adam lr 1e-3, teacher 784-1200-1200-10 with dropout 0.3, student 784-64-10,"
  echo "distillation with T = 4, alpha = 0.9 and cached teacher logits. Ratios are kdtrain / PyTorch (higher is faster)."
  echo
  echo "| measure | kdtrain | PyTorch | ratio | target |"
  echo "|---|---|---|---|---|"
  for t in 1 2; do
    row "teacher samples/s, batch 128, $t thread(s)" "$(value kdtrain_teacher_b128_t$t)" "$(value pytorch_teacher_b128_t$t)" "≥ 2.5 (2 threads)"
    row "teacher samples/s, batch 256, $t thread(s)" "$(value kdtrain_teacher_b256_t$t)" "$(value pytorch_teacher_b256_t$t)" ""
    row "student samples/s, batch 128, $t thread(s)" "$(value kdtrain_student_b128_t$t)" "$(value pytorch_student_b128_t$t)" "≥ 5"
    row "distilled student samples/s, batch 128, $t thread(s)" "$(value kdtrain_distill_b128_t$t)" "$(value pytorch_distill_b128_t$t)" "≥ 5"
    printf '| %s | %s ms | %s ms | %s | %s |\n' "temperature fit, 10,000 x 10, $t thread(s) (ratio: PyTorch time / kdtrain time)" \
      "$(value kdtrain_tfit_ms_t$t)" "$(value pytorch_lbfgs_ms_t$t)" "$(ratio "$(value pytorch_lbfgs_ms_t$t)" "$(value kdtrain_tfit_ms_t$t)")" "≥ 50"
  done
  echo
  echo "bf16 (\`train.precision = bf16\`: bf16 products with float32 accumulation, float32 master weights; oneDNN's"
  echo "kernel here: $(value gemm_bf16_impl)). The peers: kdtrain's own float32 step, PyTorch's float32 path and its"
  echo "bf16 path (torch.autocast on the CPU around forward and loss, F.linear in bf16 through oneDNN's"
  echo "$(value pytorch_bf16_onednn); float32 weights and Adam; autocast check passed: $(value pytorch_bf16_ok))."
  echo
  echo "| measure | kdtrain bf16 | peer | peer's value | ratio | target |"
  echo "|---|---|---|---|---|---|"
  for t in 1 2; do
    brow() { printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "${2:-–}" "$3" "${4:-–}" "$(ratio "$2" "$4")" "$5"; }
    brow "teacher samples/s, batch 128, $t thread(s)" "$(value kdtrain_bf16_teacher_b128_t$t)" "kdtrain fp32" "$(value kdtrain_teacher_b128_t$t)" "≥ 1.7"
    brow "teacher samples/s, batch 128, $t thread(s)" "$(value kdtrain_bf16_teacher_b128_t$t)" "PyTorch bf16" "$(value pytorch_bf16_teacher_b128_t$t)" "≥ 4"
    brow "student samples/s, batch 128, $t thread(s)" "$(value kdtrain_bf16_student_b128_t$t)" "PyTorch fp32" "$(value pytorch_student_b128_t$t)" "≥ 6"
    brow "student samples/s, batch 128, $t thread(s)" "$(value kdtrain_bf16_student_b128_t$t)" "PyTorch bf16" "$(value pytorch_bf16_student_b128_t$t)" ""
    brow "distilled student samples/s, batch 128, $t thread(s)" "$(value kdtrain_bf16_distill_b128_t$t)" "PyTorch fp32" "$(value pytorch_distill_b128_t$t)" "≥ 6"
    brow "distilled student samples/s, batch 128, $t thread(s)" "$(value kdtrain_bf16_distill_b128_t$t)" "PyTorch bf16" "$(value pytorch_bf16_distill_b128_t$t)" ""
  done
  echo
  echo "| machine, bf16 | 1 thread | 2 threads |"
  echo "|---|---|---|"
  echo "| AVX512_BF16 dot-product peak (vdpbf16ps), GFLOP/s | $(value peak_bf16_dp_gflops_t1) | $(value peak_bf16_dp_gflops_t2) |"
  echo "| AMX-BF16 tile peak (tdpbf16ps), GFLOP/s | $(value peak_amx_bf16_gflops_t1) | $(value peak_amx_bf16_gflops_t2) |"
  echo "| the teacher step's 8 bf16 products alone, GFLOP/s | $(value gemm_bf16_teacher_b128_t1_gflops) | $(value gemm_bf16_teacher_b128_t2_gflops) |"
  share() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "–"; else printf "%.0f %%", 100 * a / b }'; }
  # The target applies to the peak of the instructions oneDNN's kernel uses (AMX tiles on a CPU with AMX).
  amx_target=""; dp_target=" (target ≥ 75 %)"
  case "$(value gemm_bf16_impl)" in *amx*) amx_target=" (target ≥ 75 %: the kernel is AMX)"; dp_target="" ;; esac
  echo "| products alone, share of the dot-product peak$dp_target | $(share "$(value gemm_bf16_teacher_b128_t1_gflops)" "$(value peak_bf16_dp_gflops_t1)") | $(share "$(value gemm_bf16_teacher_b128_t2_gflops)" "$(value peak_bf16_dp_gflops_t2)") |"
  echo "| products alone, share of the AMX peak$amx_target | $(share "$(value gemm_bf16_teacher_b128_t1_gflops)" "$(value peak_amx_bf16_gflops_t1)") | $(share "$(value gemm_bf16_teacher_b128_t2_gflops)" "$(value peak_amx_bf16_gflops_t2)") |"
  echo "| teacher step (batch 128), GFLOP/s in its products | $(value kdtrain_bf16_teacher_b128_t1_gflops) | $(value kdtrain_bf16_teacher_b128_t2_gflops) |"
  echo
  echo "NLL reached on the same logits: kdtrain $(value kdtrain_tfit_nll_t1) at T = $(value kdtrain_tfit_T_t1) ($(value kdtrain_tfit_steps_t1) passes, the exact minimum);"
  echo "LBFGS (lr 0.01, max_iter 50, T from 1.5) $(value pytorch_lbfgs_nll_t1) at T = $(value pytorch_lbfgs_T_t1)."
  echo
  echo "| machine | 1 thread | 2 threads |"
  echo "|---|---|---|"
  echo "| FMA peak, GFLOP/s | $(value peak_gflops_t1) | $(value peak_gflops_t2) |"
  echo "| teacher step (batch 128), GFLOP/s in its products | $(value kdtrain_teacher_b128_t1_gflops) | $(value kdtrain_teacher_b128_t2_gflops) |"
  echo "| the step's 8 products alone, GFLOP/s | $(value gemm_teacher_b128_t1_gflops) | $(value gemm_teacher_b128_t2_gflops) |"
  echo "| products alone, share of peak (target ≥ 75 %) | $(awk -v a="$(value gemm_teacher_b128_t1_gflops)" -v b="$(value peak_gflops_t1)" 'BEGIN{printf "%.0f %%", 100*a/b}') | $(awk -v a="$(value gemm_teacher_b128_t2_gflops)" -v b="$(value peak_gflops_t2)" 'BEGIN{printf "%.0f %%", 100*a/b}') |"
  echo "| whole step, share of peak | $(awk -v a="$(value kdtrain_teacher_b128_t1_gflops)" -v b="$(value peak_gflops_t1)" 'BEGIN{printf "%.0f %%", 100*a/b}') | $(awk -v a="$(value kdtrain_teacher_b128_t2_gflops)" -v b="$(value peak_gflops_t2)" 'BEGIN{printf "%.0f %%", 100*a/b}') |"
  echo
  echo "With another process keeping one core busy ($(value load_busy) other running): teacher $(value busy_teacher_b128_t1) samples/s on 1 thread,"
  echo "$(value busy_teacher_b128_t2) on 2; student $(value busy_student_b128_t1) on 1 thread, $(value busy_student_b128_t2) on 2."
  echo
  if [ -n "$(value kdtrain_data_memory_epoch_s)" ]; then
    echo "Data (Fashion-MNIST train split, batch 128): an in-memory epoch of shuffled batches $(value kdtrain_data_memory_epoch_s) s = $(value kdtrain_data_memory_share_pct) % of a teacher epoch ($(value kdtrain_data_teacher_epoch_s) s, target ≤ 5 %); streamed $(value kdtrain_data_stream_epoch_s) s = $(value kdtrain_data_stream_share_pct) %; naive random-row reads $(value kdtrain_data_naive_epoch_s) s."
  fi
  echo
  echo "Raw values:"
  echo
  echo '```'
  cat "$raw"
  echo '```'
} >"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
bench_calibrators
