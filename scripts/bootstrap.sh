#!/usr/bin/env bash
# Installs what kdtrain needs from Debian's packages: only what is missing, and
# silently when everything is there. Safe to run any number of times.
#
#   scripts/bootstrap.sh               build and test dependencies
#   scripts/bootstrap.sh --data        also the Fashion-MNIST data set package
#   scripts/bootstrap.sh --reference   also PyTorch, h5py, NumPy, SciPy and scikit-learn (the fixture
#                                      scripts, scripts/make_reference.py, scripts/export_torch_logits.py)
#   scripts/bootstrap.sh --fuzz        also clang and its OpenMP runtime (scripts/fuzz.sh)
#   scripts/bootstrap.sh --onnx        also what checks `kdtrain export --onnx` (tests/onnx): python3-onnx,
#                                      nodejs and npm (an existing node and npm on PATH will do), and
#                                      onnxruntime-node ONNX_RUNTIME_VERSION from npm into .cache/onnxruntime/
set -euo pipefail
cd "$(dirname "$0")/.."

# The onnxruntime-node release the ONNX tests run (docs/EXPORT.md, "How the export is checked"); its own
# postinstall script is not run (it fetches GPU providers; the CPU one is in the package).
ONNX_RUNTIME_VERSION=1.31.1

# Open MPI: kdtrain builds without it, but with it runs under mpirun (docs/SCALING.md),
# and the tests run it on loopback (tests/mpi/).
packages=(g++ make cmake pkg-config libdnnl-dev libhdf5-dev zlib1g-dev catch2 libopenmpi-dev openmpi-bin)
onnx=0
for arg in "$@"; do
  case "$arg" in
    --data) packages+=(dataset-fashion-mnist hdf5-tools) ;;
    --reference) packages+=(python3-torch python3-h5py python3-numpy python3-scipy python3-sklearn) ;;
    --fuzz) packages+=(clang libomp-dev time) ;;
    --onnx) onnx=1; packages+=(python3-onnx)
            # Debian's nodejs and npm, unless a node and an npm (nodesource's, say) are already on PATH.
            if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi ;;
    *) echo "bootstrap.sh: unknown option '$arg' (expected --data, --reference, --fuzz or --onnx)" >&2; exit 2 ;;
  esac
done

# onnxruntime-node into the project's cache, once per pinned version.
install_onnxruntime() {
  local dir=.cache/onnxruntime
  [ -f "$dir/node_modules/onnxruntime-node/package.json" ] &&
    grep -q "\"version\": \"$ONNX_RUNTIME_VERSION\"" "$dir/node_modules/onnxruntime-node/package.json" && return 0
  echo "bootstrap: installing onnxruntime-node@$ONNX_RUNTIME_VERSION from npm into $dir"
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "kdtrain-onnx-check", "private": true}' >"$dir/package.json"
  # Without the registry (no network, a proxy whose certificate node does not trust) the
  # install is impossible: say so, and the ONNX runtime tests skip with their own message.
  # scripts/check-fresh.sh fails when they would skip there.
  if ! (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
          "onnxruntime-node@$ONNX_RUNTIME_VERSION" >/dev/null); then
    echo "bootstrap: WARNING: could not install onnxruntime-node@$ONNX_RUNTIME_VERSION from the npm registry" >&2
    echo "  (npm's error is above); the tests that run exported ONNX models will be skipped" >&2
  fi
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  [ "$onnx" -eq 0 ] || install_onnxruntime
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "bootstrap.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "bootstrap: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "$onnx" -eq 0 ] || install_onnxruntime
echo "bootstrap: done"
