#!/usr/bin/env bash
# Records what the binary does, for refactors that must not change it: every `--help`, a set of
# error messages, and the outputs of `train` (CNN and GAN), `experiments`, `sweep`, `render` and
# `listen` (WAV, CSV, alarms, MIDI, plot, TensorBoard). Writes OUT/manifest.txt: one line per
# output with its md5 (TensorBoard files by their records, which hold wall times, so by size).
#
#   scripts/behaviour-snapshot.sh OUT [BINARY]     # then: diff OLD/manifest.txt NEW/manifest.txt
#
# Uses ../shared/data/mnist-20k. About 1-2 minutes on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: behaviour-snapshot.sh OUT [BINARY]}
bin=${2:-target/release/gradtone}
data=$(cd "${GRADTONE_DATA:-../shared/data/mnist-20k}" && pwd)
rm -rf "$out"; mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# Each case: its stdout, stderr and exit status are kept (stderr without timings).
case_() {
  local name=$1; shift
  (cd "$out" && "$@" >"$name.stdout.raw" 2>"$name.stderr.raw"; echo $? >"$name.rc")
  # Timings, progress redraws and event-file names (wall clock) vary run to run; keep the words.
  local s
  for s in stdout stderr; do
    sed -E 's/[0-9]+(\.[0-9]+)? ?(ms|s|µs|us|min)(\/step)?\b/T/g; s/\r.*//; s/tfevents\.[0-9]+/tfevents.N/g' \
      "$out/$name.$s.raw" >"$out/$name.$s"
    rm -f "$out/$name.$s.raw"
  done
}

# Every --help.
case_ help "$bin" --help
for sub in train sweep experiments reference-check render bench listen run; do
  case_ "help-$sub" "$bin" "$sub" --help
  case_ "h-$sub" "$bin" "$sub" -h
done

# Errors a user meets.
case_ err-nofile "$bin" render /nonexistent/x.jsonl --wav x.wav
case_ err-badflag "$bin" train --no-live --frobnicate
case_ err-badmapping "$bin" render "$PWD/fixtures/pytorch_mnist_seed.jsonl" --mapping nope --wav x.wav
case_ err-nooutput "$bin" render "$PWD/fixtures/pytorch_mnist_seed.jsonl"
printf 'not json\n{"step":1}\n' >"$out/bad.jsonl"
case_ err-badjsonl "$bin" render bad.jsonl --wav bad.wav --csv bad.csv
case_ err-serve-nontoken "$bin" render "$PWD/fixtures/pytorch_mnist_seed.jsonl" --serve 0.0.0.0:0 --serve-no-token --wav y.wav
case_ err-osc "$bin" render "$PWD/fixtures/pytorch_mnist_seed.jsonl" --osc-out nowhere --wav y.wav
case_ err-data "$bin" train --no-live --steps 5 --data /nonexistent --wav e.wav

# Training: the seed CNN with every file output, the L2 term, Adam, and the GAN.
case_ train-cnn "$bin" train --no-live --data "$data" --steps 120 --no-eval --wav cnn.wav --csv cnn.csv \
  --alarms cnn-alarms.jsonl --midi cnn.mid --plot cnn.png --tensorboard cnn-tb
case_ train-seedmap "$bin" train --no-live --data "$data" --steps 60 --preset sgd_lr1.0_bs10 --mapping seed --wav seed.wav --csv seed.csv
case_ train-l2 "$bin" train --no-live --data "$data" --steps 40 --loss-weights l2=0.01 --wav l2.wav --csv l2.csv
case_ train-adam "$bin" train --no-live --data "$data" --steps 40 --preset adam_lr0.01_bs10 --wav adam.wav --alarms adam-alarms.jsonl
case_ train-gan "$bin" train --no-live --model gan --data "$data" --steps 150 --wav gan.wav --csv gan.csv --alarms gan-alarms.jsonl
case_ train-gan-dwins "$bin" train --no-live --model gan --gan-preset d-wins --data "$data" --steps 100 --wav gan2.wav --csv gan2.csv

# The five settings, and a sweep.
case_ experiments "$bin" experiments --data "$data" --out exp --steps 60
case_ sweep "$bin" sweep --data "$data" --out sweep --term l2 --weights 0.001 0.01 --steps 30

# Offline rendering from JSONL, CSV and TensorBoard, each mapping, ranks merged.
fx=$PWD/fixtures
case_ render-jsonl "$bin" render "$fx/pytorch_mnist_seed.jsonl" --wav r1.wav --csv r1.csv --alarms r1-alarms.jsonl --plot r1.png --midi r1.mid
case_ render-seed "$bin" render "$fx/pytorch_mnist_seed.jsonl" --mapping seed --wav r2.wav --wav-format float32
case_ render-depth "$bin" render "$fx/pytorch_mnist_seed.jsonl" --mapping depth --alarm-sounds --wav r3.wav
case_ render-csv "$bin" render cnn.csv --wav r4.wav --csv r4.csv
case_ render-tb "$bin" render cnn-tb --wav r5.wav --csv r5.csv
case_ render-ddp "$bin" render "$fx/pytorch_ddp_4ranks.jsonl" --wav r6.wav --csv r6.csv --alarms r6-alarms.jsonl
case_ render-perrank "$bin" render "$fx/pytorch_localsgd_4ranks.jsonl" --merge per-rank --wav r7.wav --csv r7.csv
case_ render-spf "$bin" render "$fx/pytorch_mnist_seed.jsonl" --steps-per-frame 4 --wav r8.wav
case_ render-stdin sh -c "'$bin' render - --wav r9.wav --csv r9.csv < '$fx/pytorch_mnist_seed.jsonl'"
case_ listen-stdin sh -c "'$bin' listen --wav l1.wav --csv l1.csv --alarms l1-alarms.jsonl < '$fx/pytorch_ddp_4ranks.jsonl'"

# The manifest: every file's md5, except TensorBoard event files (wall times inside): sizes.
(cd "$out" && find . -type f ! -name manifest.txt | LC_ALL=C sort | while read -r f; do
  case "$f" in
    *tfevents*) echo "$(stat -c %s "$f") size ${f%tfevents.*}tfevents.N" ;;
    *) echo "$(md5sum <"$f" | cut -c1-32) $f" ;;
  esac
done) >"$out/manifest.txt"
echo "$(wc -l <"$out/manifest.txt") files in $out/manifest.txt"
