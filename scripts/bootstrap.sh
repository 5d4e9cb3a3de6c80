#!/usr/bin/env bash
# Installs what kdtrain needs from Debian's packages: only what is missing, and
# silently when everything is there. Safe to run any number of times.
#
#   scripts/bootstrap.sh               build and test dependencies
#   scripts/bootstrap.sh --data        also the Fashion-MNIST data set package
#   scripts/bootstrap.sh --reference   also PyTorch, h5py, NumPy, SciPy and scikit-learn (the fixture
#                                      scripts, scripts/make_reference.py, scripts/export_torch_logits.py)
#   scripts/bootstrap.sh --fuzz        also clang and its OpenMP runtime (scripts/fuzz.sh)
set -euo pipefail

packages=(g++ make cmake pkg-config libdnnl-dev libhdf5-dev zlib1g-dev catch2)
for arg in "$@"; do
  case "$arg" in
    --data) packages+=(dataset-fashion-mnist hdf5-tools) ;;
    --reference) packages+=(python3-torch python3-h5py python3-numpy python3-scipy python3-sklearn) ;;
    --fuzz) packages+=(clang libomp-dev time) ;;
    *) echo "bootstrap.sh: unknown option '$arg' (expected --data, --reference or --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "bootstrap.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "bootstrap: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
