#!/usr/bin/env bash
# The cost of listening live: wall time of the same `gradtone train` run with `--no-live` (A) and
# with `--pace live` into a PulseAudio null sink (B), A B A B, medians.
#
#   scripts/bench-live.sh [ROUNDS=3] [STEPS=2000]
#
# Starts its own PulseAudio (.ci/pulse-start.sh: a null sink at 48 kHz, nothing audible) unless
# PULSE_SERVER is already set. Needs ../shared (the MNIST subset). Batch 10, seed 1, no test-set
# evaluation: the loop is forward, backward, norms, update, then the sound of the step.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-2000}
shared=${GRADTONE_SHARED:-../shared}
cargo build --release -q -p gradtone
bin=target/release/gradtone
if [ -z "${PULSE_SERVER:-}" ]; then
  # shellcheck source=../.ci/pulse-start.sh
  source .ci/pulse-start.sh
  trap gradtone_pulse_stop EXIT
fi
run() {
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" train --preset sgd_lr0.1_bs10 --seed 1 --steps "$steps" --no-eval \
    --data "$shared/data/mnist-20k" "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}
med() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
quiet="" live=""
for r in $(seq "$rounds"); do
  a=$(run --no-live)
  b=$(run --pace live)
  echo "round $r: --no-live $a s, --pace live $b s (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  quiet="$quiet $a"
  live="$live $b"
done
qa=$(echo "$quiet" | med)
lb=$(echo "$live" | med)
echo
echo "$(date -u +%F) on $(nproc) cores, $steps steps at batch 10, load $load_start at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end, $rounds rounds A B A B, medians"
echo
echo "| --no-live s | --pace live s | overhead |"
echo "|---:|---:|---:|"
echo "| $qa | $lb | $(awk -v a="$qa" -v b="$lb" 'BEGIN {printf "%+.1f %%", 100 * (b - a) / a}') |"
