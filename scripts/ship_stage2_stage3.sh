#!/usr/bin/env bash
# How the shipped stage2 and stage3 models are made: trained on all of the course data.
#   python -m landmarks.data --data-dir ../shared/course-data --out-dir lists/all --test-ratio 0
#   python -m landmarks.data --data-dir ../shared/course-data --out-dir lists/all3 --test-ratio 0 --negatives 2
# The *-split runs use the same commands on the 90/10 split, for the numbers in the README.
set -euo pipefail
PY=${PY:-.venv/bin/python}
run() { [ -f "runs/$2/last.pt" ] || $PY -m landmarks.detector --phase "$1" --quiet --run-name "${@:2}"; }
run train stage2-all --config configs/stage2.toml --list-dir lists/all
$PY scripts/ship_model.py runs/stage2-all/last.pt stage2 --test-flip
run finetune stage3-all --model runs/stage2-all/last.pt --config configs/stage3.toml --classify --list-dir lists/all3
$PY scripts/ship_model.py runs/stage3-all/last.pt stage3 --test-flip
