#!/usr/bin/env bash
# How the shipped stage2, stage3 and faces models are made. All three train on the fixed split's
# training pictures only, so the README's test figures are on pictures none of them has seen.
#   python -m landmarks.data --data-dir ../shared/course-data --out-dir lists/split --test-ratio 0.1 --seed 0
#   python -m landmarks.data --data-dir ../shared/course-data --out-dir lists/tune --test-ratio 0.1 --val-ratio 0.1 --seed 0
# stage2 and stage3's starting point (SimCC, 300 epochs) ran on a lent GPU (docs/experiments/head_experiments.sh:
# runs simcc-300-erase-kd, stopped at epoch 243 of 300, and simcc-300-erase, at 246); on 2 CPU cores
# each took about 2.5 hours then (15 minutes on one thread with today's training path).
# stage2 ships without test-time flip: 3.36 % against 3.23 % with it, at half the time a face (docs/performance.md).
set -euo pipefail
PY=${PY:-.venv/bin/python}
run() { [ -f "runs/$2/last.pt" ] || $PY -m landmarks.detector --phase "$1" --quiet --run-name "${@:2}"; }
run train hm-200 --config configs/stage2_heatmap.toml --list-dir lists/split --epochs 200 --erase 0.5
run train stage2-kd --config configs/stage2.toml --list-dir lists/split --teacher runs/hm-200/last.pt
$PY scripts/tools/ship_model.py runs/stage2-kd/last.pt stage2 --no-test-flip
run train stage2-split --config configs/stage2.toml --list-dir lists/split
run train faces-tune-a --config configs/faces.toml --list-dir lists/tune --test-list lists/tune/val_pictures.txt
[ -f lists/tune3d/train.txt ] || $PY -m landmarks.data --data-dir ../shared/course-data --out-dir lists/tune3d \
    --test-ratio 0.1 --val-ratio 0.1 --seed 0 --negatives 2 --detector-negatives runs/faces-tune-a/best.pt
run finetune stage3-tune --model runs/stage2-split/last.pt --config configs/stage3.toml --list-dir lists/tune3d \
    --test-list lists/tune3d/val.txt
$PY scripts/tools/ship_model.py runs/stage3-tune/last.pt stage3 --face-threshold 0.3
run finetune faces-384ft --model runs/faces-tune-a/best.pt --config configs/faces.toml --input-size 384 --epochs 20 \
    --lr 0.0005 --list-dir lists/tune --test-list lists/tune/val_pictures.txt
run finetune faces-448ft --model runs/faces-384ft/best.pt --config configs/faces.toml --input-size 448 --epochs 25 \
    --lr 0.0005 --list-dir lists/tune --test-list lists/tune/val_pictures.txt
$PY scripts/tools/ship_model.py runs/faces-448ft/best.pt faces --input-size 448 --face-threshold 0.2
