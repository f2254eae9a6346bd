#!/usr/bin/env bash
# lctrain's GPU checks in one go, for a machine with a CUDA PyTorch (pip, with transformers) and no
# package registry: build against that LibTorch (CUDA + NCCL) with Debian's libraries brought as
# .deb files (scripts/gpu/fetch_deps.sh, run beforehand on a Debian machine), run the GPU tests,
# compare with transformers, a bf16 learning run, benchmark against PyTorch, then the whole suite
# if time is left.
#   scripts/gpu_check.sh [RESULTS_DIR]     (default: $OUT, else ./gpu-results)
# Environment: GPU_CHECK_DEADLINE (seconds for everything, default 540), GPU_CHECK_BUILD_BUDGET
# (seconds for the build, default 300), GPU_CHECK_SKIP (phase names to skip), BENCH_LENGTHS
# (the lengths after 8K, default "4096 16384"), GPU_CHECK_WORK (scratch, default /tmp/lctrain-gpu).
# Each phase writes RESULTS_DIR/<phase>.log; RESULTS_DIR/summary.txt says which passed and when.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
results=${1:-${OUT:-$root/gpu-results}}
work=${GPU_CHECK_WORK:-/tmp/lctrain-gpu}
deadline=$((SECONDS + ${GPU_CHECK_DEADLINE:-540}))
mkdir -p "$results" "$work"
summary=$results/summary.txt
: >"$summary"

# phase NAME BUDGET_SECONDS COMMAND...: runs COMMAND with output in NAME.log, bounded by its
# budget and by what is left of the deadline; records the outcome.
phase() {
  local name=$1 budget=$2
  shift 2
  local left=$((deadline - SECONDS))
  ((budget > left)) && budget=$left
  if ((budget < 10)); then
    echo "$name: skipped (deadline)" | tee -a "$summary"
    return 1
  fi
  if [[ " ${GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
    echo "$name: skipped (GPU_CHECK_SKIP)" | tee -a "$summary"
    return 0
  fi
  local started=$SECONDS status
  timeout --kill-after=10 "$budget" "$@" >>"$results/$name.log" 2>&1
  status=$?
  local verdict=ok
  ((status == 124)) && verdict="TIMED OUT after $budget s"
  ((status != 0 && status != 124)) && verdict="FAILED (exit $status)"
  echo "$name: $verdict ($((SECONDS - started)) s)" | tee -a "$summary"
  return $status
}

python=${PYTHON:-python3}
deps=$work/deps
build=$work/build

environment() {
  set -x
  date -u
  nvidia-smi || true
  uname -a
  cat /etc/os-release | head -3
  g++ --version | head -1
  cmake --version | head -1
  ninja --version
  nvcc --version | tail -2 || true
  nproc
  $python -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "", "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI, "transformers", transformers.__version__); print(torch.utils.cmake_prefix_path)'
  ls "$($python -c 'import torch, os; print(os.path.dirname(torch.__file__))')/include" | head -30
}

configure_and_build() {
  set -ex
  # Gloo's headers go apart: they are searched last (-idirafter), only if this LibTorch ships none.
  "$python" "$root/scripts/gpu/unpack_debs.py" "$deps" $(ls "$root"/.gpu-deps/*.deb | grep -v gloo)
  "$python" "$root/scripts/gpu/unpack_debs.py" "$work/gloo" "$root"/.gpu-deps/libgloo-dev*.deb
  local torch_prefix site nccl
  torch_prefix=$($python -c 'import torch; print(torch.utils.cmake_prefix_path)')
  site=$($python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  nccl=$(find "$site/nvidia" /usr/include /usr/local/cuda/include -name nccl.h 2>/dev/null | head -1)
  export NCCL_INCLUDE_DIR=${nccl%/nccl.h}
  [ -d /usr/local/cuda ] && export CUDAToolkit_ROOT=/usr/local/cuda
  local cuda_option=ON
  for attempt in cuda cpu-only; do
    # A rerun on the same machine keeps the first attempt's build folder (incremental).
    [ "$attempt" = cpu-only ] && rm -rf "$build"
    # The second attempt builds without the CUDA/NCCL code paths (LibTorch still runs on the GPU):
    # it keeps the other checks alive when only that code fails to compile here.
    if cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$torch_prefix;$deps/usr" -DTORCH_CUDA_ARCH_LIST=9.0 \
      -DCMAKE_CXX_FLAGS="-idirafter $work/gloo/usr/include" -DLCTRAIN_CUDA=$cuda_option &&
      ninja -C "$build" -j "$(nproc)" -k 0 2>&1 | tee "$work/ninja-$attempt.log" &&
      [ "${PIPESTATUS[0]}" -eq 0 ]; then
      echo "built ($attempt)"
      return 0
    fi
    # Retry only when every failure is in the CUDA-only sources.
    if grep "^FAILED:" "$work/ninja-$attempt.log" | grep -qv "communicator\|device_info"; then
      return 1
    fi
    cuda_option=OFF
  done
  return 1
}

gpu_tests() {
  set -ex
  "$build/bin/test_gpu" --gtest_color=no
  # The users' launcher: torchrun's agent serves the store, NCCL on this GPU, 3 steps.
  "$python" -m torch.distributed.run --nproc_per_node 1 --no_python "$build/bin/lctrain" train \
    --config "$root/configs/demo-tiny.yaml" "model.config=$root/configs/models/tiny-test.json" \
    "data.path=$root/data/sample-tokens.txt" training.device=cuda training.precision=bf16 \
    distributed.backend=nccl training.steps=3 "output.dir=$work/torchrun-nccl"
}

hf_parity() {
  set -ex
  local fixture=$root/tests/fixtures/tiny-llama-parity
  local lctrain=$build/bin/lctrain
  # 1. The Hugging Face fixture, read by both, on the GPU in float32.
  "$lctrain" forward --model "$fixture" --ids "$fixture/ids.txt" --out "$work/fixture.safetensors" \
    --dtype f32 --device cuda
  "$python" "$root/scripts/gpu/hf_parity.py" "$fixture" "$fixture/ids.txt" "$work/fixture.safetensors"
  # 2. A model lctrain fine-tuned with PI (64 -> 256, bf16, NCCL on one GPU) and wrote in
  #    Hugging Face layout, read by transformers with its rope_scaling, past the old window.
  "$lctrain" launch --nproc-per-node 1 -- train --config "$root/configs/demo-tiny.yaml" \
    "model.config=$root/configs/models/tiny-test.json" "data.path=$root/data/sample-tokens.txt" \
    training.device=cuda training.precision=bf16 distributed.backend=nccl training.steps=10 \
    output.checkpoint_every=0 "output.dir=$work/pi-tiny"
  tr -s '[:space:]' '\n' <"$root/data/sample-tokens.txt" | head -200 | tr '\n' ' ' >"$work/ids200.txt"
  for device in cuda cpu; do
    "$lctrain" forward --model "$work/pi-tiny/final" --ids "$work/ids200.txt" \
      --out "$work/pi-$device.safetensors" --dtype f32 --device $device
    "$python" "$root/scripts/gpu/hf_parity.py" "$work/pi-tiny/final" "$work/ids200.txt" \
      "$work/pi-$device.safetensors" --device $device
  done
  cat "$work/pi-tiny/final/config.json"
  # 3. Every RoPE scaling (docs/rope-scaling.md): the config.json lctrain writes makes transformers
  #    compute the frequencies the model was trained with (dynamic: past the original window).
  for scaling in dynamic yarn llama3; do
    "$lctrain" train --config "$root/configs/demo-tiny.yaml" \
      "model.config=$root/configs/models/tiny-test.json" "data.path=$root/data/sample-tokens.txt" \
      training.device=cpu training.precision=fp32 training.steps=2 output.checkpoint_every=-1 \
      "context.scaling=$scaling" "output.dir=$work/rope-$scaling"
    "$lctrain" forward --model "$work/rope-$scaling/final" --ids "$work/ids200.txt" \
      --out "$work/rope-$scaling.safetensors" --dtype f32 --device cpu
    "$python" "$root/scripts/gpu/hf_parity.py" "$work/rope-$scaling/final" "$work/ids200.txt" \
      "$work/rope-$scaling.safetensors" --device cpu
    cat "$work/rope-$scaling/final/config.json"
  done
}

learning() {
  set -ex
  # bf16 mixed precision learns as fp32 does: the same PI fine-tuning (256 -> 512) of a
  # 12.5M-parameter model from random init, once in each precision, on the GPU.
  for precision in bf16 fp32; do
    "$build/bin/lctrain" train --config "$root/configs/demo-tiny.yaml" \
      "model.config=$root/configs/models/tiny-20m.json" "data.path=$root/data/sample-tokens.txt" \
      context.target_length=512 training.steps=150 training.micro_batch_size=4 \
      training.precision=$precision training.device=cuda output.checkpoint_every=0 \
      output.log_every=25 output.save_final=false "output.dir=$work/learn-$precision"
  done
  for precision in bf16 fp32; do
    echo "$precision:" && cut -c1-200 "$work/learn-$precision/metrics.jsonl"
  done
}

# benchmark LENGTHS...: lctrain and transformers side by side (bench/train_throughput.sh).
benchmark() {
  set -x
  LCTRAIN=$build/bin/lctrain BENCH_WORK=$work/bench-${1} STEPS=${BENCH_STEPS:-8} \
    "$root/bench/train_throughput.sh" "$@"
}

# Where a step's time goes at 8K, on both sides (LCTRAIN_PROFILE; torch.profiler), split by the
# same rules (`lctrain profile-summary`); the traces stay in the results for Perfetto.
profile() {
  set -x
  LCTRAIN=$build/bin/lctrain BENCH_WORK=$work/profile STEPS=5 PROFILE=1 \
    "$root/bench/train_throughput.sh" 8192
  cp "$work"/profile/*.trace.json* "$results/" || true
}

# Each side's fastest setting at 8K: both without activation checkpointing (side by side), then
# lctrain alone recomputing every second layer, and without the fused q/k/v and gate/up GEMMs.
bench_recompute() {
  set -x
  LCTRAIN=$build/bin/lctrain BENCH_WORK=$work/bench-no-recompute STEPS=${BENCH_STEPS:-8} \
    EXTRA=training.activation_checkpointing=false HF_EXTRA=--no-gradient-checkpointing \
    "$root/bench/train_throughput.sh" 8192
  for extra in training.activation_checkpointing_every=2 training.fused_projections=false; do
    LCTRAIN=$build/bin/lctrain BENCH_WORK=$work/bench-$extra STEPS=${BENCH_STEPS:-8} BASELINE=none \
      EXTRA=$extra "$root/bench/train_throughput.sh" 8192
  done
}

whole_suite() {
  set -x
  ctest --test-dir "$build" -j 8 --timeout 120 --output-on-failure
}

export PATH=$deps/usr/bin:$PATH
export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export root python work deps build
export results
export -f environment configure_and_build gpu_tests hf_parity learning benchmark profile \
  bench_recompute whole_suite
phase environment 60 bash -c environment
if phase build "${GPU_CHECK_BUILD_BUDGET:-300}" bash -c configure_and_build; then
  # The issue's order: what a lent GPU is rarest for comes first.
  phase gpu_tests 120 bash -c gpu_tests
  phase bench_8k 120 bash -c "benchmark 8192"
  phase profile 90 bash -c profile
  phase bench_4k_16k 180 bash -c "benchmark ${BENCH_LENGTHS:-4096 16384}"
  phase hf_parity 120 bash -c hf_parity
  phase learning 60 bash -c learning
  phase bench_recompute 150 bash -c bench_recompute
  phase whole_suite 240 bash -c whole_suite
fi
echo "results in $results"
cat "$summary"
