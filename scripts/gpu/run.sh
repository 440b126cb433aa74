#!/usr/bin/env bash
# GPU machine side: one call that trains the Table 1 plan first and checks and benchmarks only
# with the time left, returning two archives under $OUT (the device tool brings back few files).
# Needs gpu-carry/ from scripts/gpu/prepare.sh (the binary, MNIST, table1-plan.json) and python3
# with PyTorch (for libtorch's shared libraries).
#
#   OUT=/tmp/out scripts/gpu/run.sh
#
# Environment (seconds are wall time from the script's start):
#   CAPSNET_GPU_BACKEND   tch-cuda (default); `tch` or `flex` run the same script on the CPU (dry run)
#   CAPSNET_GPU_TOTAL     everything must be packed by then (default 500; the call's timeout_s
#                         must be above it)
#   CAPSNET_GPU_TRAIN     the launcher's budget for the Table 1 plan (default 360)
#   CAPSNET_GPU_PARALLEL  training processes at once: `auto` (default: a warm-up measures 1, 2, …
#                         at most CAPSNET_GPU_MAX_PARALLEL, default 4 on a GPU, 2 otherwise) or N
#   CAPSNET_GPU_WARMUP    seconds each warm-up trial trains (default 20)
#   CAPSNET_GPU_QUICK=1   tiny sizes for a dry run; CAPSNET_GPU_WGPU=0 skips the wgpu step
#
# $OUT receives: table1.tar.gz (`capsnet launch --archive`: summaries, configs, metrics, logs,
# launch-status.json; `cargo xtask collect $OUT/table1.tar.gz results/raw/table1` here) and
# extras.tar.gz (run.log, GPU and versions, smoke check, parity, benches, GPU memory).
#
# TF32 is pinned off for everything here (NVIDIA_TF32_OVERRIDE=0: cuBLAS and cuDNN compute
# float32 in float32), capsnet and the PyTorch reference alike; the summaries say so.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:?set OUT to a folder for the results}
mkdir -p "$out"
work=$(mktemp -d)
backend=${CAPSNET_GPU_BACKEND:-tch-cuda}
total=${CAPSNET_GPU_TOTAL:-500}
train_budget=${CAPSNET_GPU_TRAIN:-360}
quick=${CAPSNET_GPU_QUICK:-0}
start=$SECONDS
left() { echo $(( total - (SECONDS - start) )); }
log="$work/run.log"
exec > >(tee -a "$log") 2>&1
step() { echo; echo "=== $(date -u +%H:%M:%S) (+$(( SECONDS - start )) s) $*"; }
pack_extras() {
    tar -czf "$out/extras.tar.gz" -C "$work" --exclude=table1 .
}
trap pack_extras EXIT

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$work/gpu.csv"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' \
    | tee "$work/versions.txt" || true
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
[[ -n $torch_lib ]] && export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CAPSNET_DATA="$PWD/gpu-carry/data"
export NVIDIA_TF32_OVERRIDE=0
bin="$PWD/gpu-carry/capsnet"
[[ -x "$bin" ]] || { xz -dk "$bin.xz" && chmod +x "$bin"; }
wbin="$PWD/gpu-carry/capsnet-wgpu"
[[ -x "$wbin" ]] || { [[ -f "$wbin.xz" ]] && xz -dk "$wbin.xz" && chmod +x "$wbin"; }
cat gpu-carry/REVISION 2>/dev/null | tee -a "$work/versions.txt"
on_gpu=0
command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1 && on_gpu=1
parallel=${CAPSNET_GPU_PARALLEL:-auto}
max_parallel=${CAPSNET_GPU_MAX_PARALLEL:-$(( on_gpu == 1 ? 4 : 2 ))}
warmup=${CAPSNET_GPU_WARMUP:-20}

# GPU memory, sampled every 200 ms for the whole script.
if (( on_gpu )); then
    nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 200 \
        > "$work/gpu-memory.csv" 2>/dev/null &
    smi=$!
    trap 'kill $smi 2>/dev/null; pack_extras' EXIT
fi

step "smoke check ($backend, 30 s at most)"
timeout 30 "$bin" train experiments/quickstart.toml --backend "$backend" --plain \
    --run-dir "$work/smoke" data.train_limit=256 data.test_limit=256 train.epochs=1 \
    train.checkpoint_every_steps=0 train.tensorboard=false
smoke=$?
echo "smoke: exit $smoke"
rm -rf "$work/smoke/checkpoints"
if (( smoke != 0 )); then
    echo "the smoke check failed: no training (see run.log)"
    exit 1
fi

step "Table 1 plan: $parallel at once (at most $max_parallel), budget $train_budget s"
plan=gpu-carry/table1-plan.json
sizing=()
[[ $parallel == auto ]] && sizing=(--max-parallel "$max_parallel" --warmup-secs "$warmup" --fit-epochs)
"$bin" launch "$plan" --backend "$backend" --parallel "$parallel" "${sizing[@]}" \
    --budget-secs "$train_budget" --out "$work/table1" --archive "$out/table1.tar.gz"
echo "launch: exit $?"

exp=experiments/mnist.toml
steps=20
train_batches=(128 512)
infer_batch=1000
if [[ $quick == 1 ]]; then
    exp=experiments/quickstart.toml
    steps=2
    train_batches=(16)
    infer_batch=64
fi

# Each step only with the time it may need left; each under its own timeout.
if (( $(left) > 120 )); then
    step "parity $backend vs flex"
    timeout 100 "$bin" parity experiments/quickstart.toml --backend "$backend" --batch-size 8 --json \
        > "$work/parity-quickstart.json"
    echo "exit $?"; grep -c '"ok": true' "$work/parity-quickstart.json"
fi
for b in "${train_batches[@]}"; do
    (( $(left) > 90 )) || break
    step "bench $exp batch $b"
    timeout 80 "$bin" bench "$exp" --backend "$backend" --batch-size "$b" --steps $steps --warmup 3 \
        > "$work/bench-b$b.json"
    echo "batch $b: exit $?"; grep images_per_sec "$work/bench-b$b.json"
done
# The PyTorch reference on the same GPU, same network and batch, alternated with capsnet
# (two rounds, capsnet first in each; TF32 off on both sides). `cargo xtask bench-compare
# --from-records compare/` (here, after unpacking extras.tar.gz) checks the layer tables and
# writes the same report as on a CPU: the GPU ratio.
if (( on_gpu )) && python3 -c 'import torch' 2>/dev/null; then
    mkdir -p "$work/compare"
    "$bin" info "$exp" --json > "$work/compare/info-capsnet.json"
    python3 scripts/reference/capsnet_torch.py info --json --network capsnet \
        > "$work/compare/info-pytorch.json"
    b=${train_batches[0]}
    for round in 1 2; do
        (( $(left) > 80 )) || break
        step "round $round: capsnet vs PyTorch reference, $exp batch $b"
        timeout 60 "$bin" bench "$exp" --backend "$backend" --batch-size "$b" --steps $steps \
            --warmup 3 > "$work/compare/capsnet-r$round.json" || { rm -f "$work/compare/capsnet-r$round.json"; break; }
        timeout 60 python3 scripts/reference/capsnet_torch.py bench --device cuda --dtype fp32 \
            --batch-size "$b" --steps $steps --warmup 3 > "$work/compare/pytorch-r$round.json" \
            || { rm -f "$work/compare/capsnet-r$round.json" "$work/compare/pytorch-r$round.json"; break; }
        grep -h '"train_images_per_sec"\|"inference_images_per_sec"' \
            "$work/compare/capsnet-r$round.json" "$work/compare/pytorch-r$round.json"
    done
fi
if (( $(left) > 60 )); then
    step "bench $exp inference batch $infer_batch"
    timeout 50 "$bin" bench "$exp" --backend "$backend" --batch-size $infer_batch --steps 5 --warmup 2 \
        > "$work/bench-b$infer_batch.json"
    grep images_per_sec "$work/bench-b$infer_batch.json"
fi

if [[ ${CAPSNET_GPU_WGPU:-1} == 1 && -x "$wbin" ]] && (( $(left) > 150 )); then
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
        timeout 30 "$wbin" backends | tee "$work/backends-wgpu.txt"
        timeout 60 "$wbin" parity experiments/quickstart.toml --backend wgpu --batch-size 8 --json \
            > "$work/parity-wgpu-quickstart.json"
        echo "parity wgpu: exit $?"; grep -c '"ok": true' "$work/parity-wgpu-quickstart.json"
        wb=128; [[ $quick == 1 ]] && wb=16
        timeout 50 "$wbin" bench experiments/quickstart.toml --backend wgpu --batch-size $wb \
            --steps 10 --warmup 3 > "$work/bench-wgpu-b$wb.json"
        echo "bench wgpu: exit $?"; grep images_per_sec "$work/bench-wgpu-b$wb.json"
    )
fi

step "done"
[[ -f "$work/gpu-memory.csv" ]] && sort -t, -k2 -n "$work/gpu-memory.csv" | tail -1
ls -la "$out"
