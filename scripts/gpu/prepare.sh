#!/usr/bin/env bash
# Build machine side of a GPU run: builds the `capsnet` binary with the `tch` backend against
# the pip PyTorch 2.11 wheel (the GPU machine's version) and a second one with the `wgpu`
# backend, strips and compresses them, and copies them with the MNIST files and the Vulkan
# loader's Debian packages
# (the GPU machine has the NVIDIA Vulkan driver but no loader; see
# ../shared/design/gpu-notes.md) into gpu-carry/ (git-ignored; name it in the device tool's
# `carry`).
#
#   scripts/gpu/prepare.sh [PYTHON_WITH_TORCH]     # default: /work/venv-torch/bin/python
#
# A dry run of the whole path on a CPU (docs/gpu.md): CAPSNET_GPU_BACKEND=flex copies the
# workspace's flex build instead (no PyTorch, no wgpu build, no Vulkan packages), and
# CAPSNET_GPU_QUICK=1 writes the quick plan; then run.sh with the same variables.
#
# The builds go to target-tch/ and target-wgpu/ next to the checkout's target/ (their own
# feature sets: ~30 and ~13 min cold on 2 cores). See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${CAPSNET_DATA:-../shared/datasets}
if [[ ${CAPSNET_GPU_BACKEND:-tch-cuda} == flex ]]; then
    cargo build --release --workspace --all-targets --quiet
    rm -rf gpu-carry && mkdir -p gpu-carry/data/mnist
    strip -o gpu-carry/capsnet target/release/capsnet
    xz -T0 -6 gpu-carry/capsnet
    cp "$data"/mnist/*.gz gpu-carry/data/mnist/
    git rev-parse HEAD > gpu-carry/REVISION
    echo "flex (CPU dry run)" >> gpu-carry/REVISION
    skip_gpu_builds=1
else
    skip_gpu_builds=0
fi
python=${1:-/work/venv-torch/bin/python}
if (( ! skip_gpu_builds )); then
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
echo "libtorch from $torch_dir ($torch_version)"
# The binary links the libtorch it is built against and runs against the GPU machine's own
# PyTorch: the two must be the same release (docs/gpu.md).
want=${CAPSNET_GPU_TORCH:-2.11.}
if [[ $torch_version != "$want"* ]]; then
    echo "error: $python has torch $torch_version, but the GPU machine has $want* (set CAPSNET_GPU_TORCH if that changed)" >&2
    exit 1
fi
[[ -f "$torch_dir/lib/libtorch_cuda.so" ]] || {
    echo "error: $torch_dir/lib has no libtorch_cuda.so: a CPU-only libtorch can never use CUDA" >&2
    exit 1
}
target=${CAPSNET_TCH_TARGET:-../target-tch}
# CAPSNET_LIBTORCH_VERSION: embedded in the binary (build.rs), recorded in every summary's
# `accelerator` as the libtorch it was built against.
CAPSNET_LIBTORCH_VERSION="$torch_version" \
LIBTORCH="$torch_dir" LIBTORCH_CXX11_ABI=1 LIBTORCH_BYPASS_VERSION_CHECK=1 \
    cargo build --release -p capsnet-train --features tch --bin capsnet --target-dir "$target"
wgpu_target=${CAPSNET_WGPU_TARGET:-../target-wgpu}
cargo build --release -p capsnet-train --features wgpu --bin capsnet --target-dir "$wgpu_target"
rm -rf gpu-carry && mkdir -p gpu-carry/data/mnist gpu-carry/debs
strip -o gpu-carry/capsnet "$target/release/capsnet"
strip -o gpu-carry/capsnet-wgpu "$wgpu_target/release/capsnet"
xz -T0 -6 gpu-carry/capsnet gpu-carry/capsnet-wgpu
cp "$data"/mnist/*.gz gpu-carry/data/mnist/
# The Vulkan loader and GL/EGL dispatch libraries wgpu loads (unpacked with dpkg -x there).
(cd gpu-carry/debs && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
git rev-parse HEAD > gpu-carry/REVISION
echo "torch $torch_version" >> gpu-carry/REVISION
fi
# The Table 1 plan the launcher runs there (CAPSNET_GPU_QUICK=1: tiny sizes, for dry runs).
quick_overrides=()
# (Quick: 256 images, small networks of both kinds, for a dry run on a CPU.)
[[ ${CAPSNET_GPU_QUICK:-0} == 1 ]] && quick_overrides=(data.train_limit=256 data.test_limit=200
    train.epochs=1 train.batch_size=32 train.eval_batch_size=100 model.conv1_channels=16
    model.primary_types=4 'model.decoder.hidden=[32, 64]' 'baseline.conv_channels=[16, 16]'
    'baseline.hidden=[64]')
cargo capsnet sweep-plan experiments/table1.toml "${quick_overrides[@]}" --json > gpu-carry/table1-plan.json
du -sh gpu-carry
size=$(du -sb gpu-carry | cut -f1)
if (( size > 60 * 1024 * 1024 )); then
    echo "error: gpu-carry is $size bytes; the device tool carries 64 MiB in all" >&2
    exit 1
fi
