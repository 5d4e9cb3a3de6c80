#!/usr/bin/env bash
# Mutation testing: does the test suite catch small, plausible bugs in src/?
#
#   scripts/mutate.sh [--list] [--only N[,N...]] [--jobs J]
#
#   --list        print the mutations (and whether each still applies to HEAD), build nothing
#   --only N,...  run only these mutations (numbers as --list shows them)
#   --jobs J      parallel jobs for the build and for ctest (default 2)
#
# The committed tree (git archive HEAD, so uncommitted edits are not seen) is copied into
# a scratch folder, removed on exit, and configured once as a Release build. The
# unmutated tree must build and pass first. Then each mutation below (a one-line literal
# change: file, text that must occur exactly once, replacement) is applied, the build is
# brought up to date, ctest runs (stopping at the first failure, a timeout on every
# test), and the file is restored from a pristine copy. A mutation is "killed" when a
# test fails or the build breaks (the table says which), "SURVIVED" when every test
# passes: then some behaviour is not specified by any test.
#
# Time: the first build takes a few minutes; each mutation then costs a rebuild
# (5-30 s) plus a ctest run (20-70 s) on 2 cores, so the whole table takes 30 to 60
# minutes. Too slow for CI, which does not run it: run it by hand after changing
# the tests or the code they guard.
#
# Exit status: 0 when every mutation applied and was killed, 1 when one survived or did
# not apply, 2 on a usage error or when the unmutated tree fails.
# Environment: KD_MUTATE_TIMEOUT (seconds a test, default 300), KD_MUTATE_LOG_DIR (keep
# each mutation's build and ctest output there), KD_MUTATE_EXCLUDE (a ctest -E regex of
# tests to leave out, e.g. timing-dependent ones that fail under load and would "kill"
# mutations they do not detect).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

MUT_FILE=() MUT_FIND=() MUT_REPL=() MUT_DESC=()
mutation() { MUT_FILE+=("$1"); MUT_FIND+=("$2"); MUT_REPL+=("$3"); MUT_DESC+=("$4"); }

# ---- the mutations: file, exact text (once in the file), replacement, description -----------

# distillation and cross-entropy losses
mutation src/core/ops_softmax.c 'total += a * T * T * kl;' 'total += a * kl;' \
    'KD loss value without the T^2 factor'
mutation src/core/ops_softmax.c 'grad_scale = a * T / rows;' 'grad_scale = a / rows;' \
    'KD gradient without the T factor'
mutation src/core/ops_softmax.c 'double a = y >= 0 ? alpha : 1.0' 'double a = alpha' \
    'KD loss: an unlabelled row (-1) keeps alpha, not 1'
mutation src/core/ops_softmax.c 'double a = y >= 0 ? alpha : 1.0' 'double a = y > 0 ? alpha : 1.0' \
    'KD loss: label 0 taken for unlabelled'
mutation src/core/ops_softmax.c 'double temperature = node->fparam[0];' 'double temperature = 1.0;' \
    'log-softmax backward without the 1/T'
mutation src/core/ops_softmax.c 'classes, labels[i], rows,' 'classes, labels[i], 1,' \
    'cross-entropy gradient summed over the batch'

# dense ops and the model
mutation src/core/ops_dense.c 'for (int j = j0; j < j1; j++) db[j] += row[j];' \
    'for (int j = j0; j < j1; j++) db[j] = row[j];' \
    'linear: bias gradient keeps only the last row'
mutation src/core/ops_dense.c 'if (wants_grad(w)) /* dW (in, out) += X^T dY */' 'if (false) /* dW skipped */' \
    'linear: weight gradient skipped'
mutation src/core/ops_dense.c 'dy[i] = yv[i] > 0.0f ? dy[i] : 0.0f' 'dy[i] = yv[i] >= 0.0f ? dy[i] : 0.0f' \
    'ReLU backward passes the gradient where x <= 0'
mutation src/core/ops_dense.c 'float keep_scale = 1.0f / (1.0f - p);' 'float keep_scale = 1.0f;' \
    'dropout without its 1/(1-p) scale'
mutation src/nn/mlp.c 'hidden ? KD_ACT_RELU : KD_ACT_NONE' 'KD_ACT_RELU' \
    'MLP: ReLU on the logits layer too'

# optimisers and schedules
mutation src/nn/optim.c 'p[i] -= lr * d;' 'p[i] += lr * d;' \
    'SGD steps up the gradient'
mutation src/nn/optim.c 'float d = g[i] + wd * p[i];' 'float d = g[i] - wd * p[i];' \
    'SGD weight decay with the wrong sign'
mutation src/nn/optim.c 'd = nesterov ? d + mu * buf[i] : buf[i];' 'd = nesterov ? d + mu * buf[i] : d;' \
    'plain SGD momentum ignores its buffer'
mutation src/nn/optim.c 'p[i] -= step_size * m[i] / (sqrtf(v[i]) * inv_root_bc2 + eps);' \
    'p[i] += step_size * m[i] / (sqrtf(v[i]) * inv_root_bc2 + eps);' \
    'AdamW steps up the gradient'
mutation src/nn/optim.c '.step_size = (float)((double)lr / (1.0 - pow(c->beta1, t))),' '.step_size = (float)lr,' \
    'AdamW without the bias correction of m'
mutation src/nn/optim.c '.inv_root_bc2 = (float)(1.0 / sqrt(1.0 - pow(c->beta2, t)))' '.inv_root_bc2 = 1.0f' \
    'AdamW without the bias correction of v'
mutation src/nn/optim.c '.decay = (float)(1.0 - (double)lr * c->weight_decay),' '.decay = 1.0f,' \
    'AdamW ignores decoupled weight decay'
mutation src/nn/optim.c 'cos(3.14159265358979323846 * progress)' 'cos(3.14159265358979323846 * progress / 2)' \
    'cosine schedule over a quarter period'
mutation src/nn/optim.c '(double)(t / (c->step_size > 0 ? c->step_size : 1))' \
    '(double)t / (double)(c->step_size > 0 ? c->step_size : 1)' \
    'step schedule decays continuously, not in steps'
mutation src/nn/optim.c 'return c->lr * (double)(step + 1) / (double)c->warmup_steps;' \
    'return c->lr * (double)step / (double)c->warmup_steps;' \
    'warm-up off by one (first step at lr 0)'
mutation src/nn/optim.c 'if (norm > c->clip_norm) {' 'if (norm < 0.0) {' \
    'clip_norm never applied'
mutation src/nn/optim.c 's->step = opt->step;' 's->step = opt->step - 1;' \
    'checkpoint saves optimiser step - 1'

# data
mutation src/data/loader.c 'int64_t want = remaining < l->options.batch_size ? remaining : l->options.batch_size;' \
    'int64_t want = remaining < l->options.batch_size ? remaining - 1 : l->options.batch_size;' \
    'loader: the last partial batch loses a row'
mutation src/data/loader.c 'kd_rng_below(rng, (uint64_t)i + 1)' 'kd_rng_below(rng, (uint64_t)i)' \
    'shuffle off by one (Sattolo: no row stays put)'
mutation src/data/dataset.c 'val->row_begin = train->rows - count;' 'val->row_begin = 0;' \
    'validation rows from the start of train'

# calibration metrics and the temperature fit
mutation src/calib/metrics.c 'if (m > 0 && c <= (double)m / n_bins) m--;' 'if (m > 0 && c < (double)m / n_bins) m--;' \
    'ECE bin edge: c = m/M lands in the bin above'
mutation src/calib/metrics.c 'if (c >= 1.0) return n_bins - 1;' 'if (c >= 1.0) return n_bins;' \
    'ECE: confidence 1.0 in an extra bin'
mutation src/calib/metrics.c 'for (int c = 0; c < classes; c++) sum += exp(((double)z[c] - max) / temperature);' \
    'for (int c = 0; c < classes; c++) sum += exp((double)z[c] - max);' \
    'metrics: confidence (ECE) and log-sum-exp at T = 1'
mutation src/calib/metrics.c 'm->nll_sum += log_sum - ((double)z[y] - max) / temperature;' \
    'm->nll_sum += log_sum - ((double)z[y] - max);' \
    'NLL: label logit not divided by T'
mutation src/calib/metrics.c 'double p = exp(((double)z[c] - max) / temperature - log_sum);' \
    'double p = exp(((double)z[c] - max) - log_sum);' \
    'Brier: probabilities without the temperature'
mutation src/calib/metrics.c 'brier += (p - target) * (p - target);' 'brier += fabs(p - target);' \
    'Brier without its square'
mutation src/calib/reliability.c 'sum += (p[k] = exp(((double)z[k] - z[top]) / temperature));' \
    'sum += (p[k] = exp((double)z[k] - z[top]));' \
    'reliability metrics at T = 1'
mutation src/calib/ce_estimators.c 'debiased += nb / (double)n * ((gap / nb) * (gap / nb) - acc * (1.0 - acc) / (nb - 1.0));' \
    'debiased += nb / (double)n * ((gap / nb) * (gap / nb) - acc * (1.0 - acc) / nb);' \
    'debiased CE: variance over n_b, not n_b - 1'
mutation src/calib/ce_estimators.c 'while (pos == edge && b < M - 1) edge = (int64_t)(b + 2) * n / M, b++;' \
    'while (pos == edge && b < M - 1) edge = (int64_t)(b + 2) * n / M + 1, b++;' \
    'equal-mass bins one rank too wide'
mutation src/calib/bootstrap.c 'kd_rng_seed(&rng, kd_rng_at(key, (uint64_t)r));' 'kd_rng_seed(&rng, key);' \
    'every bootstrap resample the same'
mutation src/calib/reliability.c 'if (count[b]) ece += fabs(right[b] - conf[b]) / (double)n;' \
    'if (count[b]) ece += fabs(right[b] - conf[b]) / (double)count[b] / n_bins;' \
    'kd_ece: bins not weighted'
mutation src/calib/temperature.c 'mean - zy, m2 - mean * mean' 'zy - mean, m2 - mean * mean' \
    'temperature fit: NLL derivative with the wrong sign'
mutation src/calib/temperature.c 'while (fabs(g) > fit->tolerance &&' 'while (g > fit->tolerance &&' \
    'temperature fit stops at once when NLL'"'"' < 0'

# workflows
mutation src/workflows/trainer.c '(float)c->distill.temperature' '1.0f' \
    'trainer distils at T = 1, not distill.temperature'
mutation src/workflows/trainer.c 't->batch_labels[i] = labelled ? b->y[i] : -1;' \
    't->batch_labels[i] = labelled ? b->y[i] : b->y[i];' \
    'trainer ignores data.labelled (every row labelled)'
mutation src/workflows/calibrate.c 'o->split = KD_SPLIT_VAL;' 'o->split = KD_SPLIT_TEST;' \
    'calibrate fits on the test split by default'
mutation src/workflows/calibrate.c 'metrics(o, &test, classes, T, &res->test_after, err)' \
    'metrics(o, &test, classes, 1.0, &res->test_after, err)' \
    'calibrate: test metrics "after" without T'
mutation src/workflows/eval.c 'double T = model.calibration.present && !e->no_temperature ? model.calibration.temperature : 1.0;' \
    'double T = 1.0;' \
    'eval ignores the stored temperature'

# ---- arguments ------------------------------------------------------------------------------

usage() { echo "usage: scripts/mutate.sh [--list] [--only N[,N...]] [--jobs J]" >&2; exit 2; }
count=${#MUT_FILE[@]}
list=0 only="" jobs=2
while [ $# -gt 0 ]; do
    case "$1" in
        --list) list=1 ;;
        --only) [ $# -ge 2 ] || usage; only=$2; shift ;;
        --only=*) only=${1#--only=} ;;
        --jobs) [ $# -ge 2 ] || usage; jobs=$2; shift ;;
        --jobs=*) jobs=${1#--jobs=} ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "mutate.sh: unknown option '$1'" >&2; usage ;;
    esac
    shift
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "mutate.sh: --jobs: expected a number >= 1, found '$jobs'" >&2; exit 2; }
timeout=${KD_MUTATE_TIMEOUT:-300}
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || { echo "mutate.sh: KD_MUTATE_TIMEOUT: expected seconds, found '$timeout'" >&2; exit 2; }

selected=()
if [ -n "$only" ]; then
    IFS=',' read -r -a wanted <<<"$only"
    for n in "${wanted[@]}"; do
        if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt "$count" ]; then
            echo "mutate.sh: --only: expected numbers 1..$count, found '$n'" >&2
            exit 2
        fi
        selected+=("$n")
    done
else
    for ((n = 1; n <= count; n++)); do selected+=("$n"); done
fi

# ---- the literal replacement (perl: index/substr, no regex) ----------------------------------

# FIND and REPL come from the environment. Reads the file named by $1 (or stdin for "-"),
# prints how often FIND occurs; with $2 = apply and exactly one occurrence, rewrites the file.
# shellcheck disable=SC2016 # perl code: its $ are perl's
literal='
    my ($file, $mode) = @ARGV;
    my $fh;
    if ($file eq "-") { $fh = \*STDIN } else { open $fh, "<", $file or die "$file: $!\n" }
    local $/; my $s = <$fh>; close $fh;
    my ($find, $repl) = ($ENV{FIND}, $ENV{REPL});
    my ($n, $pos, $at) = (0, 0, -1);
    while (($pos = index($s, $find, $pos)) >= 0) { $at = $pos if $n == 0; $n++; $pos += length $find; }
    print "$n\n";
    exit 0 unless $mode eq "apply" && $n == 1;
    substr($s, $at, length $find) = $repl;
    open my $out, ">", $file or die "$file: $!\n"; print $out $s; close $out or die "$file: $!\n";'

occurrences_message() { # file count
    if [ "$2" -eq 0 ]; then echo "does not apply: $1: text not found"; else echo "does not apply: $1: text found $2 times"; fi
}

if [ "$list" -eq 1 ]; then
    bad=0
    for n in "${selected[@]}"; do
        i=$((n - 1))
        found=$(git -C "$repo" show "HEAD:${MUT_FILE[$i]}" 2>/dev/null |
                FIND=${MUT_FIND[$i]} REPL=${MUT_REPL[$i]} perl -e "$literal" - count || true)
        note=""
        if [ "$found" -ne 1 ]; then note="  ($(occurrences_message "${MUT_FILE[$i]}" "$found"))"; bad=1; fi
        printf '%3d  %-26s %s%s\n' "$n" "${MUT_FILE[$i]}" "${MUT_DESC[$i]}" "$note"
        printf '       - %s\n       + %s\n' "${MUT_FIND[$i]}" "${MUT_REPL[$i]}"
    done
    exit "$bad"
fi

# ---- the scratch tree and its build ----------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/kd-mutate.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
tree="$work/tree" pristine="$work/pristine"
mkdir -p "$tree" "$pristine"
git -C "$repo" archive HEAD | tar -x -C "$tree"
cp -a "$tree/src" "$pristine/src"
commit=$(git -C "$repo" rev-parse --short HEAD)
if [ -n "${KD_MUTATE_LOG_DIR:-}" ]; then mkdir -p "$KD_MUTATE_LOG_DIR"; fi

stop_flag=""
ctest_select=()
if [ -n "${KD_MUTATE_EXCLUDE:-}" ]; then ctest_select=(-E "$KD_MUTATE_EXCLUDE"); fi
if ctest --help 2>/dev/null | grep -q -- '--stop-on-failure'; then stop_flag="--stop-on-failure"; fi

keep_log() { # log name
    if [ -n "${KD_MUTATE_LOG_DIR:-}" ]; then cp "$1" "$KD_MUTATE_LOG_DIR/$2"; fi
}

# The first failing test of a ctest log in ctest's order, with ctest's reason (Failed,
# Timeout, SEGFAULT...) and how many others failed.
first_failure() {
    local name failed
    name=$(sed -n '/The following tests FAILED:/{n;p;q}' "$1" |
           sed -E 's/^[[:space:]]*[0-9]+ - (.*) \(([^)]*)\)[[:space:]]*$/\1 (\2)/')
    failed=$(sed -n '/The following tests FAILED:/,$p' "$1" | grep -cE '^[[:space:]]+[0-9]+ - ' || true)
    if [ -n "$name" ] && [ "$failed" -gt 1 ]; then name="$name +$((failed - 1)) more"; fi
    if [ -z "$name" ]; then
        name=$(grep -m1 -E 'Test +#[0-9]+: .*\*\*\*' "$1" |
               sed -E 's/^.*Test +#[0-9]+: (.*[^ .]) *\.*\*\*\*([A-Za-z]+).*$/\1 (\2)/' || true)
    fi
    echo "${name:-ctest failed without naming a test}"
}

run_tests() { # log
    (cd "$tree" && ctest --test-dir build -j"$jobs" --timeout "$timeout" $stop_flag "${ctest_select[@]}" --output-on-failure) >"$1" 2>&1
}

cd "$tree"
echo "mutate.sh: ${#selected[@]} of $count mutations of commit $commit in $tree"
if [ -n "${KD_MUTATE_EXCLUDE:-}" ]; then echo "mutate.sh: leaving out the tests matching: $KD_MUTATE_EXCLUDE"; fi
echo "mutate.sh: configuring and building the unmutated tree (a few minutes)..."
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$jobs"; } >"$work/base-build.log" 2>&1; then
    tail -n 30 "$work/base-build.log" >&2
    echo "mutate.sh: the unmutated tree does not build" >&2
    exit 2
fi
echo "mutate.sh: running the tests on the unmutated tree..."
if ! run_tests "$work/base-test.log"; then
    keep_log "$work/base-test.log" base-test.log
    echo "mutate.sh: the unmutated tree fails its tests: $(first_failure "$work/base-test.log")" >&2
    exit 2
fi

# ---- the mutations ---------------------------------------------------------------------------

RES_STATUS=() RES_DETAIL=()
killed=0 survived=0 invalid=0 done_count=0
for n in "${selected[@]}"; do
    i=$((n - 1))
    file=${MUT_FILE[$i]}
    done_count=$((done_count + 1))
    start=$SECONDS
    printf '[%d/%d] #%d %s: %s ... ' "$done_count" "${#selected[@]}" "$n" "$file" "${MUT_DESC[$i]}"
    if [ ! -f "$tree/$file" ]; then
        found=0
    else
        found=$(FIND=${MUT_FIND[$i]} REPL=${MUT_REPL[$i]} perl -e "$literal" "$tree/$file" apply)
    fi
    if [ "$found" -ne 1 ]; then
        RES_STATUS[n]="ERROR"
        RES_DETAIL[n]=$(occurrences_message "$file" "$found")
        invalid=$((invalid + 1))
        echo "${RES_DETAIL[$n]}"
        continue
    fi
    log="$work/mutation-$n.log"
    if ! cmake --build build -j"$jobs" >"$log" 2>&1; then
        RES_STATUS[n]="killed"
        RES_DETAIL[n]="build failed: $(grep -m1 -E 'error' "$log" | sed -E 's/^[^ ]*\/tree\///' | cut -c1-100 || true)"
        killed=$((killed + 1))
    elif ! run_tests "$log"; then
        RES_STATUS[n]="killed"
        RES_DETAIL[n]=$(first_failure "$log")
        killed=$((killed + 1))
    else
        RES_STATUS[n]="SURVIVED"
        RES_DETAIL[n]=""
        survived=$((survived + 1))
    fi
    keep_log "$log" "mutation-$n.log"
    cp "$pristine/$file" "$tree/$file" # a fresh mtime: the next build recompiles it
    echo "${RES_STATUS[$n]}${RES_DETAIL[$n]:+: ${RES_DETAIL[$n]}} ($((SECONDS - start)) s)"
done

# ---- the table -------------------------------------------------------------------------------

echo
printf '%3s  %-52s  %-8s  %s\n' "#" "mutation" "result" "first failing test"
for n in "${selected[@]}"; do
    printf '%3d  %-52s  %-8s  %s\n' "$n" "${MUT_DESC[$((n - 1))]}" "${RES_STATUS[$n]}" "${RES_DETAIL[$n]}"
done
echo
summary="${#selected[@]} mutations: $killed killed, $survived survived"
if [ "$invalid" -gt 0 ]; then summary="$summary, $invalid did not apply"; fi
echo "$summary"
if [ "$survived" -gt 0 ] || [ "$invalid" -gt 0 ]; then exit 1; fi
exit 0
