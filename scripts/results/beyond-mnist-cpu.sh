#!/usr/bin/env bash
# CPU-sized MultiMNIST and affNIST comparisons (CapsNet vs a CNN of similar size), one epoch
# each, into runs/beyond_mnist_cpu/; resumable (a finished run is skipped, an interrupted
# one resumes). Then: cargo xtask collect runs/beyond_mnist_cpu results/raw/beyond_mnist_cpu
# && cargo xtask tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --workspace --all-targets
out=runs/beyond_mnist_cpu
for exp in multimnist_quick_baseline multimnist_quick affnist_quick_baseline affnist_quick; do
    dir="$out/$exp"
    if [[ -f "$dir/summary.json" ]] && grep -q '"completed": true' "$dir/summary.json"; then
        echo "skip $exp (finished)"
        continue
    fi
    resume=()
    [[ -d "$dir/checkpoints" ]] && resume=(--resume)
    target/release/capsnet train "experiments/$exp.toml" --run-dir "$dir" --plain "${resume[@]}"
done
