#!/usr/bin/env bash
# Downloads (on a Debian 12 machine with apt) the Debian libraries lctrain builds against into
# .gpu-deps/, for the GPU machine, which has a CUDA PyTorch but no package registry.
# scripts/gpu_check.sh unpacks them there under a private prefix (scripts/gpu/unpack_debs.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
packages=(
  libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libzstd-dev libgloo-dev
  libsentencepiece-dev libsentencepiece0 libprotobuf-lite32 sentencepiece libxxhash-dev
  libzstd1 zlib1g-dev
)
mkdir -p "$root/.gpu-deps"
cd "$root/.gpu-deps"
rm -f ./*.deb
# apt's sandbox user cannot write into most checkouts; download as the caller instead.
apt-get -o APT::Sandbox::User="$(id -un)" download "${packages[@]}" 2>&1 | grep -v '^Get:' || true
ls ./*.deb >/dev/null
echo "fetch_deps: $(ls ./*.deb | wc -l) packages, $(du -sh . | cut -f1) in $root/.gpu-deps"
