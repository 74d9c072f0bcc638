#!/usr/bin/env bash
# Stage-3 comparison on the fixed split with non-face crops (lists/split3: 90/10 by image, seed 0,
# 2 negatives per face):
#   python -m landmarks.data --data-dir ../shared/course-data --out-dir lists/split3 --test-ratio 0.1 --negatives 2
# Each run grows a face/non-face branch on runs/stage2-split/last.pt and finetunes for 30 epochs.
set -euo pipefail
PY=${PY:-.venv/bin/python}
finetune() { [ -f "runs/$1/last.pt" ] || $PY -m landmarks.detector --phase finetune --model runs/stage2-split/last.pt \
    --config configs/stage3.toml --classify --list-dir lists/split3 --quiet --run-name "$@"; }
finetune stage3-facew1 --class-weights 1,1
finetune stage3-split
finetune stage3-a0.1 --cls-weight 0.1
for run in stage3-facew1 stage3-split stage3-a0.1; do
    echo "$run: $($PY -m landmarks.detector --phase test --model runs/$run/last.pt --test-list lists/split3/test.txt \
        --test-flip --quiet --metrics-json runs/$run/test_metrics.json 2>/dev/null | tr '\n' ' ')"
done
