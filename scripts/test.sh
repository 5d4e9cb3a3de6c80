#!/usr/bin/env bash
# Installs what is missing, builds kdtrain warning-free (-Werror) and runs every
# test: first the Release build, then the AddressSanitizer + UBSan build. The ONNX
# export tests' runtime (onnxruntime-node, node, python3-onnx) is installed too
# (bootstrap.sh --onnx; npm needs the network the first time).
#   scripts/test.sh            both builds
#   scripts/test.sh --quick    the Release build only
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "test.sh: unknown option '$arg' (expected --quick)" >&2; exit 2 ;;
  esac
done

scripts/bootstrap.sh --onnx

echo "== Release build and tests"
scripts/build.sh build
ctest --test-dir build --output-on-failure -j2

if [ "$quick" -eq 0 ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
  KD_BUILD_TYPE=RelWithDebInfo scripts/build.sh build-asan -DKD_SANITIZE=ON
  ctest --test-dir build-asan --output-on-failure -j2
fi
echo "test.sh: all tests passed"
