#!/usr/bin/env bash
# GPU machine side: one call that checks, benchmarks and trains, writing everything under $OUT.
# Needs gpu-carry/ from scripts/gpu/prepare.sh and python3 with PyTorch 2.11 (for libtorch).
#
#   OUT=/tmp/out scripts/gpu/run.sh [EPOCHS]
#
# Environment: CAPSNET_GPU_BACKEND (default tch-cuda; `tch` runs the same script on libtorch's
# CPU for a dry run), CAPSNET_GPU_EPOCHS (default 3), CAPSNET_GPU_QUICK=1 (tiny sizes),
# CAPSNET_GPU_WGPU=0 (skip the wgpu step).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:?set OUT to a folder for the results}
mkdir -p "$out"
backend=${CAPSNET_GPU_BACKEND:-tch-cuda}
epochs=${1:-${CAPSNET_GPU_EPOCHS:-3}}
quick=${CAPSNET_GPU_QUICK:-0}
log="$out/run.log"
exec > >(tee -a "$log") 2>&1
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.csv"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' || true
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CAPSNET_DATA="$PWD/gpu-carry/data"
bin="$PWD/gpu-carry/capsnet"
[[ -x "$bin" ]] || xz -dk "$bin.xz" && chmod +x "$bin"
wbin="$PWD/gpu-carry/capsnet-wgpu"
[[ -x "$wbin" ]] || { [[ -f "$wbin.xz" ]] && xz -dk "$wbin.xz" && chmod +x "$wbin"; }
cat gpu-carry/REVISION 2>/dev/null

# GPU memory, sampled every 200 ms for the whole script.
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 200 \
        > "$out/gpu-memory.csv" 2>/dev/null &
    smi=$!
    trap 'kill $smi 2>/dev/null' EXIT
fi

step "backends"
"$bin" backends | tee "$out/backends.txt"

step "parity $backend vs flex"
"$bin" parity experiments/quickstart.toml --backend "$backend" --batch-size 8 --json > "$out/parity-quickstart.json"
echo "exit $?"; grep -c '"ok": true' "$out/parity-quickstart.json"
"$bin" parity experiments/mnist.toml --backend "$backend" --batch-size 4 --json > "$out/parity-mnist.json"
echo "exit $?"

exp=experiments/mnist.toml
steps=20
train_batches=(128 512)
infer_batch=1000
extra=()
if [[ $quick == 1 ]]; then
    exp=experiments/quickstart.toml
    steps=2
    train_batches=(16 32)
    infer_batch=64
    extra=(data.train_limit=512 data.test_limit=256)
fi

step "bench ($exp)"
for b in "${train_batches[@]}"; do
    "$bin" bench "$exp" --backend "$backend" --batch-size "$b" --steps $steps --warmup 3 \
        > "$out/bench-b$b.json"
    echo "batch $b: exit $?"; grep images_per_sec "$out/bench-b$b.json"
done
"$bin" bench "$exp" --backend "$backend" --batch-size $infer_batch --steps 5 --warmup 2 \
    > "$out/bench-b$infer_batch.json"
grep images_per_sec "$out/bench-b$infer_batch.json"

if [[ ${CAPSNET_GPU_WGPU:-1} == 1 && -x "$wbin" ]]; then
    step "wgpu over the machine's Vulkan driver"
    # The machine has NVIDIA's Vulkan driver but no loader: unpack the carried Debian packages
    # (gpu-notes.md's recipe) and point the loader at NVIDIA's ICD. Where there is no NVIDIA
    # ICD (a dry run here), wgpu takes whatever Vulkan driver is installed (lavapipe).
    if compgen -G "gpu-carry/debs/*.deb" >/dev/null; then
        for f in gpu-carry/debs/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    (
        # Mesa's drivers (a dry run on lavapipe) print an error line per start without it.
        [[ -n ${XDG_RUNTIME_DIR:-} ]] || export XDG_RUNTIME_DIR="$(mktemp -d)"
        icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
        [[ -f $icd ]] && export VK_DRIVER_FILES=$icd
        timeout 120 "$wbin" backends | tee "$out/backends-wgpu.txt"
        timeout 300 "$wbin" parity experiments/quickstart.toml --backend wgpu --batch-size 8 --json \
            > "$out/parity-wgpu-quickstart.json"
        echo "parity wgpu: exit $?"; grep -c '"ok": true' "$out/parity-wgpu-quickstart.json"
        wb=128; [[ $quick == 1 ]] && wb=16
        timeout 300 "$wbin" bench experiments/quickstart.toml --backend wgpu --batch-size $wb \
            --steps 10 --warmup 3 > "$out/bench-wgpu-b$wb.json"
        echo "bench wgpu: exit $?"; grep images_per_sec "$out/bench-wgpu-b$wb.json"
    )
fi

step "train $exp, $epochs epochs"
"$bin" train "$exp" --backend "$backend" --plain --run-dir "$out/mnist" \
    "train.epochs=$epochs" train.eval_batch_size=1000 train.checkpoint_every_steps=0 \
    "${extra[@]}"
echo "exit $?"
rm -rf "$out/mnist/checkpoints"
cp "$out/mnist/summary.json" "$out/summary-mnist.json" 2>/dev/null

step "done"
[[ -f "$out/gpu-memory.csv" ]] && sort -t, -k2 -n "$out/gpu-memory.csv" | tail -1
