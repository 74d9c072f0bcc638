#!/usr/bin/env bash
# The stage-2 comparison: every run on the same fixed split of the course data
# (lists/split: 90/10 by image, seed 0), each a row of docs/results.md.
#   python -m landmarks.data --data-dir ../shared/course-data --out-dir lists/split --test-ratio 0.1 --seed 0
# Then: python docs/experiments/results_table.py
# Arguments name the runs to do (default: all); runs with a last.pt are skipped. Two at a time,
# one thread each, as docs/results.md was made:
#   OMP_NUM_THREADS=1 docs/experiments/stage2_experiments.sh mobilenet stage1-split ... &
#   OMP_NUM_THREADS=1 docs/experiments/stage2_experiments.sh stage2-split bn-wing-sgd ...
set -euo pipefail
PY=${PY:-.venv/bin/python}
ONLY=" $* "
train() {
    [ "$ONLY" = "  " ] || [[ "$ONLY" == *" $1 "* ]] || return 0
    [ -f "runs/$1/last.pt" ] || $PY -m landmarks.detector --phase train --list-dir lists/split --quiet --run-name "$@"
}
train stage1-split --config configs/stage1.toml
train stage1-nonorm --config configs/stage1.toml --no-normalize
train stage1-aug --config configs/stage1.toml --augment
train stage1-aug-cosine --config configs/stage1.toml --augment --schedule cosine
train bn-mse --config configs/stage2_bn.toml --loss mse
train bn-l1 --config configs/stage2_bn.toml --loss l1
train bn-smoothl1 --config configs/stage2_bn.toml --loss smooth_l1
train bn-wing --config configs/stage2_bn.toml --loss wing
train bn-wing-sgd --config configs/stage2_bn.toml --optimizer sgd --lr 0.01 --grad-clip 10
train bn-wing-adam-sgd --config configs/stage2_bn.toml --sgd-after 40 --grad-clip 10
train heatmap --config configs/stage2_heatmap.toml
train mobilenet --config configs/stage2_mobilenet.toml
train stage2-split --config configs/stage2_regression.toml
