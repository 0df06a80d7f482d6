#!/usr/bin/env bash
# Times training on the CPU with burn (benches/train_step.rs) and with PyTorch
# (scripts/bench_train_step.py) in one run, and prints images/s and the Rust/PyTorch ratio for
# feature extraction and for training steps, with the machine they ran on.
#
# Usage: scripts/bench_train.sh   (from anywhere; runs in the repository root)
# Environment:
#   THREADS                 threads for both: RAYON_NUM_THREADS for burn, --threads for
#                           PyTorch (default 2)
#   BENCH_STEPS             timed batches per measurement (default 10)
#   BENCH_WARMUP            untimed batches before each measurement (default 2)
#   BENCH_WIDTH_MULTIPLIER  network width multiplier (default 0.5)
#   PYTHON                  interpreter with torch, numpy and safetensors
#                           (default /work/scratch/torchvenv/bin/python)
#   BENCH_BINARY            a train_step binary built before by
#                           `cargo bench --bench train_step --no-run`, run in place of
#                           `cargo bench --bench train_step` (default: unset)
set -euo pipefail

cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-/work/scratch/torchvenv/bin/python}"
THREADS="${THREADS:-2}"
export BENCH_STEPS="${BENCH_STEPS:-10}"
export BENCH_WARMUP="${BENCH_WARMUP:-2}"
export BENCH_WIDTH_MULTIPLIER="${BENCH_WIDTH_MULTIPLIER:-0.5}"

if ! [[ "$THREADS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: invalid THREADS=$THREADS; use a positive integer" >&2
    exit 2
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: Python interpreter not found: $PYTHON; set PYTHON to one that has torch" >&2
    exit 1
fi
for module in torch numpy safetensors; do
    if ! "$PYTHON" -c "import $module" >/dev/null 2>&1; then
        echo "error: $PYTHON cannot import $module; install it (pip install $module) or set" \
            "PYTHON to an interpreter that has it" >&2
        exit 1
    fi
done

cpu_model="$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"

if [[ -n "${BENCH_BINARY:-}" ]]; then
    if [[ ! -x "$BENCH_BINARY" ]]; then
        echo "error: BENCH_BINARY=$BENCH_BINARY is not an executable file; build it with" \
            "cargo bench --bench train_step --no-run or unset BENCH_BINARY" >&2
        exit 1
    fi
    rust_command=("$BENCH_BINARY")
else
    rust_command=(cargo bench --quiet --bench train_step)
fi
command_line="THREADS=$THREADS BENCH_STEPS=$BENCH_STEPS BENCH_WARMUP=$BENCH_WARMUP"
command_line+=" BENCH_WIDTH_MULTIPLIER=$BENCH_WIDTH_MULTIPLIER PYTHON=$PYTHON"
if [[ -n "${BENCH_BINARY:-}" ]]; then
    command_line+=" BENCH_BINARY=$BENCH_BINARY"
fi
command_line+=" $0"

echo "== burn (${rust_command[*]}), RAYON_NUM_THREADS=$THREADS"
rust_output="$(RAYON_NUM_THREADS="$THREADS" "${rust_command[@]}")"
echo "$rust_output"
echo
echo "== PyTorch ($PYTHON scripts/bench_train_step.py --threads $THREADS)"
torch_output="$("$PYTHON" scripts/bench_train_step.py --threads "$THREADS")"
echo "$torch_output"
echo

# Each RESULT line is "RESULT <rust|torch> <measurement> <images per second>".
echo "$rust_output"$'\n'"$torch_output" | awk \
    -v command_line="$command_line" \
    -v n_cpus="$(nproc)" \
    -v cpu_model="${cpu_model:-unknown}" \
    -v date="$(date -u '+%Y-%m-%d %H:%M:%S UTC')" '
    $1 == "RESULT" {
        rate[$2, $3] = $4
        if (!($3 in seen)) {
            seen[$3] = 1
            order[++n] = $3
        }
    }
    END {
        printf "command: %s\n", command_line
        printf "nproc: %s\n", n_cpus
        printf "CPU: %s\n", cpu_model
        printf "date: %s\n\n", date
        printf "| %-11s | %12s | %15s | %12s |\n", "measurement", "burn img/s", "PyTorch img/s", "burn/PyTorch"
        printf "|-------------|--------------|-----------------|--------------|\n"
        missing = 0
        for (i = 1; i <= n; i++) {
            name = order[i]
            if (!((("rust", name) in rate) && (("torch", name) in rate))) {
                printf "error: measurement %s is missing from the burn or the PyTorch output\n", name > "/dev/stderr"
                missing = 1
                continue
            }
            printf "| %-11s | %12.1f | %15.1f | %12.2f |\n", name, rate["rust", name], rate["torch", name], rate["rust", name] / rate["torch", name]
        }
        if (n == 0) {
            print "error: neither benchmark printed a RESULT line" > "/dev/stderr"
            missing = 1
        }
        exit missing
    }'
