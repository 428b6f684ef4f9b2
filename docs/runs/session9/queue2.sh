#!/bin/bash
# Session 9's queue: pops one job per line from jobs.txt ("data variant epochs trainRows testRows [checkpoint]"),
# runs it under the shared TorchSharp lock from a worktree at the binary's commit; waits while PAUSE exists; STOP ends it.
# (Epoch 13 of the r-LSTM ran from the same script with the binary and worktree of 27f8476: docs/runs/session8/queue.sh, D=/work/runs/s9.)
cd /work/wt-bench3
BIN=/work/runs/bench-6f726ec/Microsoft.ML.AuxRnn.Benchmarks.dll
D=/work/runs/s9
while true; do
  [ -f $D/STOP ] && { echo STOPPED; exit 0; }
  while [ -f $D/PAUSE ]; do sleep 5; done
  line=$(head -1 $D/jobs.txt); [ -z "$line" ] && { echo "=== $(date -u +%H:%M:%S) ALL DONE"; exit 0; }
  sed -i 1d $D/jobs.txt
  set -- $line
  ck=""; [ -n "$6" ] && [ "$6" != - ] && ck="--checkpoint $6"; sd=""; [ -n "$7" ] && sd="--seed $7"
  echo "=== $(date -u +%H:%M:%S) start $line"
  flock /tmp/auxrnn-torch.lock dotnet $BIN --ablation $1 --variant $2 --epochs $3 --train-rows $4 --test-rows $5 --threads 2 --out ${OUT:-/work/runs/curves} --data /work/shared/data $ck $sd
  echo "=== $(date -u +%H:%M:%S) end $line rc=$?"
done
