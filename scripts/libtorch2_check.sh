#!/usr/bin/env bash
# Builds lctrain against a CUDA LibTorch 2.x with NCCL, and runs the whole suite with it, on a
# machine without a GPU: Debian 13 (trixie) packages LibTorch 2.6 built for CUDA 12.4
# (libtorch-cuda-dev, contrib) and NCCL (libnccl-dev). They need a newer glibc than Debian 12's,
# so they go into a debootstrap chroot. This compiles every CUDA/NCCL code path and the 2.x side of
# trainer/util/torch_compat*.h before a GPU machine is at hand; the GPU tests skip (no device).
#   sudo scripts/libtorch2_check.sh [ctest arguments]
# Environment: LIBTORCH2_ROOT (the chroot, default /var/tmp/lctrain-trixie; kept between runs),
# LIBTORCH2_BUILD (build folder inside the chroot, default /root/build-libtorch2),
# LIBTORCH2_MIRROR (default http://deb.debian.org/debian).
# Needs root (debootstrap, chroot, bind mounts), Debian's debootstrap, ~17 GiB of disk, and
# Debian's package registry. cuDNN is not in Debian (contrib's nvidia-cudnn downloads it from
# NVIDIA at install time): the chroot gets an empty package in its place and a stub libcudnn.so.9
# that only satisfies the linker and the loader; nothing here calls cuDNN.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
chroot_dir=${LIBTORCH2_ROOT:-/var/tmp/lctrain-trixie}
build=${LIBTORCH2_BUILD:-/root/build-libtorch2}
mirror=${LIBTORCH2_MIRROR:-http://deb.debian.org/debian}

[ "$(id -u)" -eq 0 ] || { echo "libtorch2_check: run as root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null

packages=(
  g++ cmake ninja-build
  libtorch-cuda-dev nvidia-cuda-toolkit libnccl-dev libgloo-cuda-dev python3-torch-cuda
  libopenblas0-openmp libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libsentencepiece-dev sentencepiece libzstd-dev zstd zlib1g-dev libxxhash-dev
  libgtest-dev libgmock-dev gnuplot-nox python3-sentencepiece
)

in_chroot() { chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive bash -c "$1"; }

if [ ! -x "$chroot_dir/usr/bin/apt-get" ]; then
  echo "libtorch2_check: debootstrap trixie into $chroot_dir"
  debootstrap --variant=minbase --components=main,contrib,non-free trixie "$chroot_dir" "$mirror" \
    >/dev/null
fi

mounted=()
unmount_all() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" 2>/dev/null || true; done
}
trap unmount_all EXIT
bind() {
  mkdir -p "$2"
  mountpoint -q "$2" || { mount --bind "$1" "$2" && mounted+=("$2"); }
}
mountpoint -q "$chroot_dir/proc" || { mount -t proc proc "$chroot_dir/proc" && mounted+=("$chroot_dir/proc"); }
bind /dev "$chroot_dir/dev"
bind /dev/pts "$chroot_dir/dev/pts"
# The checkout at the same path inside, so that paths in messages read the same as outside.
bind "$repo" "$chroot_dir$repo"
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"

# The placeholder for cuDNN's installer package, then the packages themselves.
in_chroot '
  set -e
  if ! dpkg-query -W nvidia-cudnn >/dev/null 2>&1; then
    mkdir -p /tmp/nvidia-cudnn/DEBIAN
    printf "Package: nvidia-cudnn\nVersion: 9.0.0.312~cuda12\nArchitecture: amd64\nMaintainer: lctrain <lctrain@example.invalid>\nDescription: placeholder (lctrain libtorch2_check: no cuDNN download)\n" \
      >/tmp/nvidia-cudnn/DEBIAN/control
    dpkg-deb --build /tmp/nvidia-cudnn /tmp/nvidia-cudnn.deb >/dev/null
    dpkg -i /tmp/nvidia-cudnn.deb >/dev/null
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends '"${packages[*]}"' >/dev/null'

# The stub libcudnn.so.9: every cuDNN function LibTorch imports, empty, under cuDNN's symbol
# version, so that linking and loading succeed. Calling one would be a bug on a machine without a
# GPU; the stub is never installed where a real cuDNN is.
in_chroot '
  set -e
  [ -e /opt/cudnn-stub/libcudnn.so.9 ] && ldconfig -p | grep -q "libcudnn.so.9 " && exit 0
  mkdir -p /opt/cudnn-stub && cd /opt/cudnn-stub
  # Every library that needs cuDNN (libtorch_cuda, libtorch_python: Python loads it eagerly).
  users=$(for library in /usr/lib/x86_64-linux-gnu/lib*.so.*; do
    if readelf -d "$library" 2>/dev/null | grep -q "NEEDED.*\[libcudnn.so.9\]"; then echo "$library"; fi
  done)
  nm -D --undefined-only $users | sed -n "s/^ *U \(cudnn[A-Za-z0-9_]*\)@libcudnn.so.9$/\1/p" |
    sort -u >symbols.txt
  sed "s/.*/void &(void) {}/" symbols.txt >stub.c
  echo "libcudnn.so.9 { global: *; };" >version.map
  gcc -shared -fPIC -o libcudnn.so.9 -Wl,-soname,libcudnn.so.9 -Wl,--version-script=version.map stub.c
  echo /opt/cudnn-stub >/etc/ld.so.conf.d/cudnn-stub.conf
  ldconfig
  echo "libtorch2_check: stub libcudnn.so.9 with $(wc -l <symbols.txt) functions"'

in_chroot "
  set -e
  python3 -c 'import torch; print(\"libtorch2_check: LibTorch\", torch.__version__, \"CUDA\", torch.version.cuda)'
  cmake -G Ninja -S $repo -B $build -DCMAKE_BUILD_TYPE=Release -Wno-dev >$build.configure.log 2>&1 ||
    { cat $build.configure.log; exit 1; }
  grep 'lctrain:' $build.configure.log
  ninja -C $build
  cd $repo
  # Debian 13's own torchrun cannot start: its static rendezvous asks TCPStore for libuv, which
  # that torch is built without, and ignores USE_LIBUV (static_tcp_rendezvous.py, 2.6). The
  # torchrun tests run on Debian 12 (CI) and on the GPU machine's pip torch instead.
  OMP_NUM_THREADS=1 ctest --test-dir $build -j \$(nproc) --output-on-failure -E '^Torchrun\.' $*"
