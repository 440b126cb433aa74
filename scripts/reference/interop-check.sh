#!/usr/bin/env bash
# The cross-framework check of docs/interop.md: trains the paper's CapsNet and Efficient-CapsNet
# for one short epoch each (512 MNIST images), exports them with a reference batch of 16 test
# images, and lets the PyTorch reference recompute outputs, losses and gradients in float64 and
# float32. Usage: scripts/reference/interop-check.sh PYTHON_WITH_TORCH [OUT_DIR]
set -euo pipefail
python=${1:?usage: $0 PYTHON_WITH_TORCH [OUT_DIR]}
out=${2:-target/interop}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
capsnet() { cargo run --quiet --manifest-path "$repo/Cargo.toml" --package xtask --bin xtask -- capsnet "$@"; }
for net in capsnet:experiments/mnist.toml efficient:experiments/efficient_capsnet.toml; do
  name=${net%%:*} exp=$repo/${net#*:}
  capsnet train "$exp" data.train_limit=512 data.test_limit=100 train.epochs=1 train.eval_batch_size=100 \
    --run-dir "$out/run-$name" --overwrite --quiet > /dev/null
  capsnet export --checkpoint "$out/run-$name" --out "$out/$name.safetensors" --reference-batch 16 > /dev/null
  for dtype in float64 float32; do
    "$python" "$repo/scripts/reference/check_export.py" "$out/$name.safetensors" --dtype "$dtype"
  done
done
