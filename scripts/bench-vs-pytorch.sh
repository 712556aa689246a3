#!/usr/bin/env bash
# Side-by-side timing: PyTorch (the 2019 original's stack, CPU) vs gradtone, A B A B per batch
# size on the same machine, medians of ms/step (forward, backward, 4 norms read, optimiser step).
#
#   scripts/bench-vs-pytorch.sh [ROUNDS=2] [STEPS=201]
#
# Needs ../shared (the MNIST subset and bench_torch.py) and PyTorch from
# ../shared/reference/pytorch/install_torch.sh (venv in ~/.cache/torch-ref). Prints a Markdown
# table: batch, PyTorch ms, gradtone ms, ratio (gradtone / PyTorch; ≤ 0.8 is the goal). Both run on
# two threads.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
steps=${2:-201}
shared=${GRADTONE_SHARED:-../shared}
py=${TORCH_PY:-$HOME/.cache/torch-ref/venv/bin/python}
[ -x "$py" ] || { echo "no PyTorch at $py: run $shared/reference/pytorch/install_torch.sh" >&2; exit 2; }
cargo build --release -q -p gradtone
bin=target/release/gradtone
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A torch rust
for b in 10 64 256; do torch[$b]=""; rust[$b]=""; done
for r in $(seq "$rounds"); do
  for b in 10 64 256; do
    t=$(MNIST_DIR="$shared/data/mnist-20k" "$py" "$shared/reference/pytorch/bench_torch.py" \
          --batch "$b" --steps "$steps" --threads 2 --wav "$tmp/t.wav" | tail -n 1 \
        | tr ' ' '\n' | sed -n 's/^ms_per_step=//p')
    # Two threads each: PyTorch's --threads 2, and gradtone's rayon pool (flex's own ops use it).
    g=$(RAYON_NUM_THREADS=2 "$bin" bench --batch "$b" --steps "$steps" --data "$shared/data/mnist-20k" \
        | sed -n 's/.*RESULT batch=[0-9]* ms_per_step=\([0-9.]*\).*/\1/p')
    echo "round $r batch $b: pytorch $t ms, gradtone $g ms (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    torch[$b]="${torch[$b]} $t"; rust[$b]="${rust[$b]} $g"
  done
done
med() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
echo "$(date -u +%F) on $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), load $load_start at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end, $rounds rounds A B A B, medians"
echo
echo "| batch | PyTorch ms/step | gradtone ms/step | ratio |"
echo "|---:|---:|---:|---:|"
for b in 10 64 256; do
  t=$(echo "${torch[$b]}" | med); g=$(echo "${rust[$b]}" | med)
  echo "| $b | $t | $g | $(awk -v g="$g" -v t="$t" 'BEGIN {printf "%.2f", g / t}') |"
done
