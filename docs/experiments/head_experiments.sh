#!/usr/bin/env bash
# The head, distillation, erasing and schedule runs of docs/results.md ("Heads, distillation,
# occlusion"). They ran on one lent H100, seven at a time, each under a 540 s limit, from crops
# packed once (python scripts/tools/pack_crops.py); runs the limit cut short are marked in the table.
# On 2 CPU cores one 300-epoch SimCC run took about 2.5 hours then (15 minutes on one thread with
# today's training path, docs/hard-faces.md). The t-* runs train on the split's
# training pictures less a validation tenth (lists/tune: --val-ratio 0.1) and score on it:
# they chose the head. The others train on lists/split and score on its test faces.
set -u
PY=${PY:-python}
S="--list-dir lists/split"; T="--list-dir lists/tune --test-list lists/tune/val.txt"
run() { name=$1; shift; [ -f "runs/$name/last.pt" ] || $PY -m landmarks.detector --phase train --quiet --run-name "$name" "$@"; }
R=configs/stage2_regression.toml
run s2-100 --config $R $S
run s2-300 --config $R $S --epochs 300
run s2-300-erase --config $R $S --epochs 300 --erase 0.5
run pip-300-erase --config $R $S --epochs 300 --erase 0.5 --head heatmap_offset
run simcc-300 --config $R $S --epochs 300 --head simcc
run simcc-300-erase --config $R $S --epochs 300 --erase 0.5 --head simcc   # = configs/stage2.toml
run r18-200 --config configs/stage2_resnet18.toml $S --epochs 200 --erase 0.5 --amp
run hm-200 --config configs/stage2_heatmap.toml $S --epochs 200 --erase 0.5
run simcc-300-erase-kd --config $R $S --epochs 300 --erase 0.5 --head simcc --teacher runs/hm-200/last.pt
run s2-300-erase-kd --config $R $S --epochs 300 --erase 0.5 --teacher runs/hm-200/last.pt
run t-s2-300-erase --config $R $T --epochs 300 --erase 0.5
run t-pip-300-erase --config $R $T --epochs 300 --erase 0.5 --head heatmap_offset
run t-simcc-300-erase --config $R $T --epochs 300 --erase 0.5 --head simcc
run t-hm-200 --config configs/stage2_heatmap.toml $T --epochs 200 --erase 0.5
