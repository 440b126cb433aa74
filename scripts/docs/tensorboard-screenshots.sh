#!/usr/bin/env bash
# Screenshots of TensorBoard for the README, taken with headless Chromium from a real sweep.
#   scripts/docs/tensorboard-screenshots.sh runs/cpu_ablation docs/img
# Needs: pip install tensorboard; apt-get install chromium.
set -euo pipefail
logdir=${1:?usage: $0 LOGDIR OUTDIR}
outdir=${2:?usage: $0 LOGDIR OUTDIR}
port=${PORT:-6123}
mkdir -p "$outdir"

tensorboard --logdir "$logdir" --port "$port" --host 127.0.0.1 \
    >"$outdir/.tensorboard.log" 2>&1 &
tb=$!
trap 'kill $tb 2>/dev/null || true' EXIT
up=0
for _ in $(seq 1 60); do
    if curl -sf "http://127.0.0.1:$port/data/runs" >/dev/null; then up=1; break; fi
    sleep 1
done
if [ "$up" != 1 ]; then
    echo "error: tensorboard did not start:" >&2
    cat "$outdir/.tensorboard.log" >&2
    exit 1
fi

shot() { # name url width
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$(mktemp -d)" --hide-scrollbars --window-size="$3",900 \
        --virtual-time-budget=15000 --screenshot="$(realpath "$outdir")/$1" "$2" 2>&1 | grep -v -e dbus -e WebGL -e "unexpected operator" || true
    [ -s "$outdir/$1" ] || { echo "error: no screenshot $outdir/$1" >&2; exit 1; }
    echo "wrote $outdir/$1"
}
shot tensorboard-scalars.png "http://127.0.0.1:$port/#scalars" 1400
shot tensorboard-hparams.png "http://127.0.0.1:$port/#hparams" 1900
rm -f "$outdir/.tensorboard.log"
