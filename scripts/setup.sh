#!/usr/bin/env bash
# Installs the Debian packages lctrain builds and tests against. Idempotent: prints nothing and
# touches nothing when every package is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build
  libtorch-dev libgloo-dev            # LibTorch 1.13 (CPU); c10d headers include gloo
  libopenblas0-openmp                 # optimized BLAS for LibTorch's CPU matmuls
  libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libsentencepiece-dev sentencepiece libzstd-dev zstd zlib1g-dev libxxhash-dev
  gnuplot-nox                         # scripts/demo.sh: the perplexity plot
  libgtest-dev libgmock-dev
  python3-torch                       # /usr/bin/torchrun, the real launcher for multi-rank tests
  python3-sentencepiece               # bench/prepare_data_throughput.sh: the Python baseline
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
