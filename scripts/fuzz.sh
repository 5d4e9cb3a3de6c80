#!/usr/bin/env bash
# Fuzzes the readers of untrusted input with libFuzzer (Debian's clang), ASan + UBSan:
#   fuzz_config      the INI reader and the run config (text)
#   fuzz_idx         the IDX reader, plain and gzipped
#   fuzz_dataset     the data-set validator, on mutated copies of small HDF5 data sets
#   fuzz_checkpoint  the checkpoint reader, on mutated copies of small checkpoints
#   fuzz_npy         the .npy reader and .npy logits (seeds: tests/data/npy's fixtures)
# Each starts from its committed seed corpus (fuzz/corpus/TARGET) and grows a working
# corpus in build-fuzz/corpus/TARGET, kept between runs.
#   scripts/fuzz.sh SECONDS [TARGET...]   each target for SECONDS (CI: a short run)
# Prints the inputs run, the CPU time and the coverage of each target (and the totals of
# every run on the working corpus), and the crashes found, each
# rerun alone and sorted by where it happened; exits 1 when any input crashed
# kdtrain's own code (the inputs are kept in build-fuzz/crashes/TARGET/, to become
# tests). Crashes inside libhdf5 1.10.8 (Debian 12) on damaged files are counted and
# listed, not failed: they are the library's (e.g. H5HG_read copying a global-heap
# object whose stored length runs past its collection, reached by reading a
# variable-length string attribute such as class_names).
# An allocation above 1 GB ends that input as out-of-memory (counted, and the run goes
# on): libhdf5 allocates what a damaged variable-length string's length field says
# before it can fail (4 GB was seen), which is the library's behaviour, not a crash. Leak detection is off for the two
# HDF5 targets: libhdf5 1.10.8 leaks 56 bytes of its metadata cache in H5Fopen on
# some damaged files; kdtrain's own leaks are caught by the ASan test build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh SECONDS [config|idx|dataset|checkpoint|npy ...]" >&2
  exit 2
fi
seconds=$1; shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(config idx dataset checkpoint npy)
for t in "${targets[@]}"; do
  case "$t" in config|idx|dataset|checkpoint|npy) ;; *) echo "fuzz.sh: unknown target '$t'" >&2; exit 2 ;; esac
done

scripts/bootstrap.sh --fuzz
# A huge allocation returns NULL, as it does outside ASan, and the code must cope.
export ASAN_OPTIONS=allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}
build=build-fuzz
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DKD_FUZZ=ON -DKD_WERROR=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if ! cmake --build "$build" -j"$(nproc)" >"$build/build.log" 2>&1; then
  tail -20 "$build/build.log"
  echo "fuzz.sh: the fuzz build failed ($build/build.log)" >&2
  exit 1
fi
mkdir -p "$build/crashes"

# Where a crash happened: "libhdf5" when, going down the stack from the fault, a
# libhdf5 frame comes before any frame of kdtrain's own sources (src/, fuzz/), which is
# then the HDF5 call that led there; "kdtrain" otherwise.
classify() {
  local first
  first=$( (grep -E '^ +#[0-9]+ ' "$1" || true) | grep -E 'libhdf5|/src/[a-z]+/[a-z_]+\.c:|/fuzz/fuzz_[a-z]+\.c:' | head -1)
  case "$first" in
    *libhdf5*) echo libhdf5 ;;
    *) echo kdtrain ;;
  esac
}

status=0
summary=()
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus" "$build/crashes/$t"
  leaks=1
  case "$t" in dataset|checkpoint) leaks=0 ;; esac
  echo "== fuzz_$t for ${seconds} s"
  log="$build/fuzz_$t.log"
  # -fork=1 -ignore_crashes=1: a crash inside libhdf5 (a library bug on a damaged file,
  # see below) is kept and the run goes on instead of stopping at the first.
  set +e
  ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=$leaks" /usr/bin/time -f "%U %S" -o "$build/cpu-$t.last" \
    "$build/fuzz/fuzz_$t" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -timeout=20 \
    -max_total_time="$seconds" -print_final_stats=1 -detect_leaks=$leaks \
    -malloc_limit_mb=1024 -rss_limit_mb=2048 -artifact_prefix="$build/crashes/$t/" \
    "$corpus" "fuzz/corpus/$t" >"$log" 2>&1
  set -e
  total=$( (grep -oE '^#[0-9]+' "$log" || true) | tail -1 | tr -d '#')
  # CPU seconds of this run (user + system, the forked workers included) and of every
  # run so far on this working corpus.
  cpu=$(awk 'NF == 2 && $1 ~ /^[0-9.]+$/ {printf "%.0f", $1 + $2}' "$build/cpu-$t.last")
  echo "${cpu:-0} ${total:-0}" >>"$build/cpu-$t.history"
  cpu_all=$(awk '{s += $1} END {printf "%.0f", s}' "$build/cpu-$t.history")
  runs_all=$(awk '{s += $2} END {printf "%.0f", s}' "$build/cpu-$t.history")
  cov=$( (grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" || true) | tail -1)
  # Triage every input that crashed: rerun it alone and read the stack.
  ooms=$( (ls "$build"/crashes/"$t"/ 2>/dev/null || true) | grep -c '^oom-' || true)
  ours=0 lib=0 flaky=0
  for input in "$build"/crashes/"$t"/crash-* "$build"/crashes/"$t"/leak-*; do
    [ -e "$input" ] || continue
    case "$input" in *.log) continue ;; esac
    one="$input.log"
    rerun=0
    ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=$leaks" "$build/fuzz/fuzz_$t" -detect_leaks=$leaks \
      -malloc_limit_mb=1024 -rss_limit_mb=2048 "$input" >"$one" 2>&1 || rerun=$?
    if [ "$rerun" -eq 0 ]; then
      flaky=$((flaky + 1)) # it crashed only after other inputs (a leak that built up, a fork's timing)
    elif [ "$(classify "$one")" = libhdf5 ]; then
      lib=$((lib + 1))
    else
      ours=$((ours + 1))
      echo "fuzz_$t: a crash in kdtrain's code, input $input:"
      (grep -E 'ERROR|SUMMARY|^ +#[0-9]+ .* in kd_' "$one" || true) | head -8
    fi
  done
  [ "$ours" -gt 0 ] && status=1
  summary+=("$(printf '  %-16s %9s inputs in %4s CPU s (all runs: %s in %s CPU s)  %s\n%18s kdtrain crashes %d, libhdf5 crashes %d, not reproduced alone %d, out-of-memory inputs %d' \
    "fuzz_$t" "${total:-?}" "${cpu:-?}" "$runs_all" "$cpu_all" "${cov:-}" "" "$ours" "$lib" "$flaky" "$ooms")")
done
echo "== fuzz.sh: ${seconds} s per target"
printf '%s\n' "${summary[@]}"
exit $status
