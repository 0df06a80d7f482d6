#!/usr/bin/env bash
# Trains one configuration on Fashion-MNIST and scores it the way docs/results.md does:
# k = 10 clustering of the test split's features (every layer), and a linear probe per layer.
#
# Usage: scripts/results_row.sh NAME [train options...]
# Environment: DC (the deepcluster binary, default target/release/deepcluster), DATA (the
# Fashion-MNIST folder, default ../shared/data/fashion-mnist), RUNS (default runs/results),
# PROBE_IMAGES (images of each split for the linear probe, default 10000), PROBE_LAYERS
# (comma-separated layers for the linear probe, default every convolution).
set -euo pipefail

name=$1
shift
dc=${DC:-target/release/deepcluster}
data=${DATA:-../shared/data/fashion-mnist}
runs=${RUNS:-runs/results}
probe_images=${PROBE_IMAGES:-10000}
probe_layers=${PROBE_LAYERS:-conv1,conv2,conv3,conv4,conv5}
run=$runs/$name
if [ ! -d "$data" ]; then
    echo "error: no Fashion-MNIST folder at \`$data\`; set DATA to a folder holding its four IDX files" >&2
    exit 2
fi
if [ ! -x "$dc" ]; then
    echo "error: no deepcluster binary at \`$dc\`; run \`cargo build --release\` or set DC" >&2
    exit 2
fi
mkdir -p "$runs"

start=$(date +%s)
"$dc" train --quiet --data "$data" --split train --out "$run" "$@"
train_seconds=$(($(date +%s) - start))

for layer in conv3 conv4 conv5 fc7; do
    "$dc" eval cluster --quiet --run "$run" --data "$data" --split test --layer "$layer" \
        --out "$run/eval/test-cluster-$layer.json" >/dev/null
done
"$dc" eval linear --quiet --run "$run" --data "$data" --max-images "$probe_images" --layers "$probe_layers" \
    --protocol pca --out "$run/eval/test-linear.json" >/dev/null

python3 "$(dirname "$0")/results_summary.py" --minutes "$train_seconds" "$run" -- "$@"
