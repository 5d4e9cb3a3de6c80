#!/usr/bin/env bash
# The fresh-machine check: the README's two commands, run as a newcomer would on a
# machine that has none of kdtrain's packages. CI (.ci/run) runs it after scripts/test.sh.
#
#   1. builds a minimal Debian 12 root with debootstrap (installed first if missing),
#      from the Debian mirror named in this machine's own apt sources;
#   2. puts the committed tree into it (`git archive HEAD`: uncommitted files cannot help);
#   3. runs `scripts/test.sh --quick` (the test command's Release half; the ASan+UBSan
#      half needs only gcc's sanitizer runtimes, libasan8 and libubsan1, which g++
#      depends on, and CI runs it outside), then the whole main job `scripts/run.sh`
#      (about 10 to 11 minutes on this 2-core machine; the whole check about 12 to 13);
#   3b. checks that the ONNX runtime tests really ran (bootstrap.sh --onnx only warns when
#      npm cannot install onnxruntime-node, and those tests then skip);
#   4. checks that the main job wrote its summary and compares its metrics with the
#      committed results/fashion-mnist/summary.csv, printing the largest difference
#      (reported, not a failure: another CPU may round differently).
#
#   scripts/check-fresh.sh [--keep] [--workdir DIR]
#     --keep         leave the root in place (unmounted) for a look afterwards
#     --workdir DIR  where the root is made (default: /var/tmp); it needs about 2 GB
#   KD_FRESH_MIRROR=URL overrides the mirror read from the apt sources (for a local
#   mirror, or to see the check fail on an unreachable one).
#
# Needs root (debootstrap, mount, chroot). Everything it mounts is unmounted and the
# root is removed on every exit path, failure and Ctrl-C included. Prints the time
# of each stage. Exit status: 0 when both commands passed and the summary was written.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

keep=0
workdir=/var/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --workdir) [ $# -ge 2 ] || { echo "check-fresh.sh: --workdir needs a directory" >&2; exit 2; }
               workdir=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-fresh.sh: unknown option '$1' (expected --keep or --workdir DIR)" >&2; exit 2 ;;
  esac
  shift
done

case "$workdir" in
  *[[:space:]]*) echo "check-fresh.sh: --workdir '$workdir': expected a path without spaces (/proc/self/mounts escapes them, and the unmount check must read it)" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "check-fresh.sh: needs root (it runs debootstrap, mount and chroot); run it as root or with sudo" >&2
  exit 1
fi
git -C "$repo" rev-parse --verify -q HEAD >/dev/null ||
  { echo "check-fresh.sh: $repo is not a git checkout with a commit; the check copies the committed tree" >&2; exit 1; }

suite=bookworm
commit=$(git -C "$repo" rev-parse --short HEAD)
t_start=$SECONDS
stage_names=()
stage_times=()
root=""
mounts=()
current_stage=""
current_t0=0

report_stages() {
  if [ -n "$current_stage" ]; then # stopped by a signal inside a stage
    stage_names+=("$current_stage (INTERRUPTED)")
    stage_times+=("$((SECONDS - current_t0))")
  fi
  [ ${#stage_names[@]} -gt 0 ] || return 0
  echo "== check-fresh: time per stage (commit $commit)"
  local i
  for i in "${!stage_names[@]}"; do
    printf '   %-34s %6ss\n' "${stage_names[$i]}" "${stage_times[$i]}"
  done
  printf '   %-34s %6ss\n' "total" "$((SECONDS - t_start))"
}

# Runs "$@" as one named stage and records its duration, also when it fails. (set -e
# does not reach inside a function called from `||`: the stages check each step.)
stage() {
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "== check-fresh: $name"
  current_stage=$name current_t0=$t0
  "$@" || rc=$?
  current_stage=""
  stage_names+=("$name$([ $rc -eq 0 ] || echo ' (FAILED)')")
  stage_times+=("$((SECONDS - t0))")
  if [ $rc -ne 0 ]; then
    echo "check-fresh.sh: stage '$name' failed (exit $rc)" >&2
    exit "$rc"
  fi
}

mounts_under_root() {
  [ -n "$root" ] || return 0
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e # every step of the cleanup runs, and says so when it fails
  if [ -n "$root" ] && [ -d "$root" ]; then
    # Processes still running inside the root (after Ctrl-C, say) keep mounts busy.
    local p
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
    done
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
      umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" 2>/dev/null || true
    done
    local left
    left=$(mounts_under_root | sort -r)
    for m in $left; do umount -l "$m" 2>/dev/null || true; done
    left=$(mounts_under_root)
    if [ -n "$left" ]; then
      echo "check-fresh.sh: could not unmount $left; $root left in place (remove it by hand once unmounted)" >&2
      rc=1
    elif [ "$keep" -eq 1 ]; then
      echo "check-fresh: root kept at $root (--keep)"
    else
      rm -rf --one-file-system "$root" || { echo "check-fresh.sh: could not remove all of $root" >&2; rc=1; }
    fi
  fi
  report_stages
  [ $rc -eq 0 ] && echo "check-fresh: passed" || echo "check-fresh: FAILED (exit $rc)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the mirror: the Debian archive this machine's own apt sources name -------------------
# One-line sources.list entries and deb822 .sources files; entries for bookworm,
# bookworm-updates and bookworm-security are carried into the root as they are here.
read_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" {
           i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
           print $(i), $(i + 1)
         }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no")
                              for (u in uris) for (s in suites) print u, s
                            types = ""; enabled = ""; delete uris; delete suites }
         /^[ \t]*$/ { flush(); next }
         /^[ \t]*#/ { next }
         { key = tolower($1); sub(/:$/, "", key)
           if (key == "types") { types = ""; for (i = 2; i <= NF; i++) types = types " " $i " " }
           else if (key == "uris") { for (i = 2; i <= NF; i++) uris[$i] = 1 }
           else if (key == "suites") { for (i = 2; i <= NF; i++) suites[$i] = 1 }
           else if (key == "enabled") enabled = tolower($2) }
         END { flush() }' "$f"
  done
}

sources=$(read_sources | awk -v s="$suite" '$2 == s || $2 == s "-updates" || $2 == s "-security"' | sort -u)
mirror=$(awk -v s="$suite" '$2 == s { print $1; exit }' <<<"$sources")
mirror_source="this machine's apt sources"
if [ -n "${KD_FRESH_MIRROR:-}" ]; then
  mirror_source=KD_FRESH_MIRROR
  # The root's sources name the override instead of this machine's Debian entries.
  sources=$(awk -v m="$KD_FRESH_MIRROR" -v s="$suite" '$2 == s || $2 == s "-updates" { print m, $2; next } { print }' <<<"$sources")
  mirror=$KD_FRESH_MIRROR
fi
if [ -z "$mirror" ]; then
  echo "check-fresh.sh: no '$suite' entry in /etc/apt/sources.list or /etc/apt/sources.list.d/; cannot tell which Debian mirror to use" >&2
  exit 1
fi
mirror=${mirror%/}
echo "== check-fresh: commit $commit, Debian $suite from $mirror"

install_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  echo "installing debootstrap"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }; then
    echo "check-fresh.sh: could not install debootstrap with apt-get (is the mirror $mirror reachable?)" >&2
    return 1
  fi
}

check_mirror() {
  # debootstrap depends on wget, so it is here now.
  if ! wget -q -O /dev/null --timeout=30 --tries=2 "$mirror/dists/$suite/Release"; then
    echo "check-fresh.sh: cannot reach the Debian mirror: $mirror/dists/$suite/Release did not download" >&2
    echo "  (the mirror comes from $mirror_source; a fresh-machine check cannot pass without it)" >&2
    return 1
  fi
}

make_root() {
  mkdir -p "$workdir" || return 1
  local wd
  wd=$(realpath "$workdir") || return 1
  root=$(mktemp -d "$wd/kdtrain-fresh.XXXXXX") || return 1
  chmod 755 "$root" || return 1 # mktemp makes it 0700, and apt's _apt user must read the root
  if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1; then
    tail -n 20 "$root.debootstrap.log" >&2
    rm -f "$root.debootstrap.log"
    echo "check-fresh.sh: debootstrap of $suite from $mirror failed (its log's end is above)" >&2
    return 1
  fi
  rm -f "$root.debootstrap.log"
  # The root gets this machine's Debian entries (updates and security too), nothing else.
  awk '{ print "deb " $1 " " $2 " main" }' <<<"$sources" >"$root/etc/apt/sources.list" || return 1
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  # A machine behind a TLS-intercepting proxy (this one) trusts the proxy's certificate
  # (/usr/local/share/ca-certificates); npm in the root gets the same trust through
  # NODE_EXTRA_CA_CERTS, and nothing else of the host. On the open Internet there is none.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cat /usr/local/share/ca-certificates/*.crt >"$root/etc/kd-host-extra-ca.pem" || return 1
  fi
  local m
  mount -t proc proc "$root/proc" && mounts+=("$root/proc")
  mount -t sysfs sysfs "$root/sys" && mounts+=("$root/sys")
  mount --bind /dev "$root/dev" && mounts+=("$root/dev")
  mount --bind /dev/pts "$root/dev/pts" && mounts+=("$root/dev/pts")
  for m in proc sys dev dev/pts; do
    mountpoint -q "$root/$m" || { echo "check-fresh.sh: could not mount $root/$m" >&2; return 1; }
  done
  # Nothing of kdtrain's: the check is void if the root already has a dependency.
  local pkg
  for pkg in cmake g++ libdnnl-dev libhdf5-dev catch2 zlib1g-dev; do
    if chroot "$root" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      echo "check-fresh.sh: the fresh root already has $pkg; the check would prove nothing" >&2
      return 1
    fi
  done
}

copy_tree() {
  mkdir -p "$root/home/newcomer/kdtrain" || return 1
  git -C "$repo" archive --format=tar HEAD | tar -x -C "$root/home/newcomer/kdtrain" || return 1
  # Everything the main job writes is newer than this mark.
  touch "$root/home/newcomer/.started" || return 1
}

# A command inside the root, from the checkout's top, with a newcomer's environment.
# It runs in the background and is waited for: a signal to this script then stops the
# wait at once, and the cleanup kills what runs inside the root.
in_root() {
  local extra_ca=()
  [ -f "$root/etc/kd-host-extra-ca.pem" ] && extra_ca=(NODE_EXTRA_CA_CERTS=/etc/kd-host-extra-ca.pem)
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb "${extra_ca[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /home/newcomer/kdtrain && $1" </dev/null &
  wait $!
}

# bootstrap.sh --onnx only warns when npm cannot install onnxruntime-node, and the ONNX
# tests then skip; on the fresh root that would hide a broken install step.
check_onnx_ran() {
  local pkg="$root/home/newcomer/kdtrain/.cache/onnxruntime/node_modules/onnxruntime-node/package.json"
  if [ ! -f "$pkg" ]; then
    echo "check-fresh.sh: onnxruntime-node was not installed in the root, so the ONNX runtime tests were skipped" >&2
    return 1
  fi
}

check_summary() {
  local tree="$root/home/newcomer/kdtrain" f
  for f in results/fashion-mnist/summary.csv results/fashion-mnist/summary.md; do
    if [ ! -s "$tree/$f" ] || [ ! "$tree/$f" -nt "$root/home/newcomer/.started" ]; then
      echo "check-fresh.sh: the main job did not write $f" >&2
      return 1
    fi
  done
  local runs
  runs=$(find "$tree/runs/fashion-mnist" -name summary.json | wc -l)
  echo "main job wrote results/fashion-mnist/summary.{csv,md} and $runs finished run folders"
  # The metrics of every run (columns val_accuracy .. test_ece_at_T), matched by
  # regime, run and seed, against the committed summary.csv.
  git -C "$repo" show HEAD:results/fashion-mnist/summary.csv >"$root/home/newcomer/committed.csv" || return 1
  awk -F, '
    FNR == 1 { for (i = 1; i <= NF; i++) col[FILENAME, $i] = i; names = $0; next }
    FILENAME == ARGV[1] { for (i = 7; i <= 16; i++) old[$1 "/" $2 "/" $4, i] = $i; oldrows[$1 "/" $2 "/" $4] = 1; next }
    { key = $1 "/" $2 "/" $4; rows++
      if (!(key in oldrows)) missing = missing " " key
      else {
        for (i = 7; i <= 16; i++) {
          d = $i - old[key, i]; if (d < 0) d = -d
          if (d > worst) { worst = d; where = key; split(names, h, ","); what = h[i]; a = old[key, i]; b = $i }
        }
        matched++
      } }
    END {
      if (missing != "") print "rows not in the committed summary:" missing
      if (worst == 0) printf "metrics: %d of %d runs compared; every metric equals the committed summary.csv\n", matched, rows
      else printf "metrics: %d of %d runs compared; largest difference %.6g in %s of %s (committed %s, now %s)\n", matched, rows, worst, what, where, a, b
    }' "$root/home/newcomer/committed.csv" "$tree/results/fashion-mnist/summary.csv"
}

stage "install debootstrap" install_debootstrap
stage "reach the mirror" check_mirror
stage "debootstrap minimal $suite" make_root
stage "copy the committed tree" copy_tree
stage "scripts/test.sh --quick" in_root "scripts/test.sh --quick"
stage "the ONNX runtime tests ran" check_onnx_ran
stage "scripts/run.sh (the main job)" in_root "scripts/run.sh"
stage "check the main job's summary" check_summary
