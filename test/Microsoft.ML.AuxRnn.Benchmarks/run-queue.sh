#!/bin/bash
# Runs benchmark jobs one after another, one training process at a time (under /tmp/auxrnn-torch.lock).
# Usage: QUEUE=DIR BIN=path/to/Microsoft.ML.AuxRnn.Benchmarks.dll [OUT=DIR] [DATA=DIR] bash run-queue.sh
# Pops one job per line from DIR/jobs.txt: "data variant epochs trainRows testRows [checkpoint|-] [seed]"
# (see Ablation.cs). Runs from the current directory, so run it from a worktree checked out at the binary's commit:
# the rows record `git rev-parse HEAD` there. Waits between jobs while DIR/PAUSE exists; DIR/STOP ends it.
set -u
D=${QUEUE:?QUEUE folder}; B=${BIN:?benchmark dll}
while true; do
  [ -f "$D/STOP" ] && { echo STOPPED; exit 0; }
  while [ -f "$D/PAUSE" ]; do sleep 5; done
  line=$(head -1 "$D/jobs.txt"); [ -z "$line" ] && { echo "=== $(date -u +%H:%M:%S) ALL DONE"; exit 0; }
  sed -i 1d "$D/jobs.txt"
  set -- $line
  ck=""; [ -n "${6:-}" ] && [ "$6" != - ] && ck="--checkpoint $6"
  sd=""; [ -n "${7:-}" ] && sd="--seed $7"
  echo "=== $(date -u +%H:%M:%S) start $line"
  flock /tmp/auxrnn-torch.lock dotnet "$B" --ablation "$1" --variant "$2" --epochs "$3" --train-rows "$4" --test-rows "$5" \
    --threads 2 --out "${OUT:-$D}" --data "${DATA:-../shared/data}" $ck $sd
  echo "=== $(date -u +%H:%M:%S) end $line rc=$?"
done
