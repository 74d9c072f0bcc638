#!/usr/bin/env bash
# Soups of face finders (docs/hard-faces.md, "Averaged finders"): the shipped `faces` finetuned
# 10 epochs at 448, drawn by yaw, with and without the zoom to 4 (as in hard_faces.sh), then their
# weights averaged with the shipped finder's and with each other's. Each finder scored with the
# shipped stage3 on the validation pictures, their mosaics, LFPW's 805 pictures and the
# validation pictures' face-free strips. The two finetunes ran together, one thread each.
set -eu
PY=${PY:-python}
mkdir -p runs/before runs/soups runs/logs
git show 421d185:landmarks/models/faces.pt > runs/before/faces-tune-a.pt
git show 6a20e3c:landmarks/models/stage3.pt > runs/before/stage3-tune.pt
[ -f lists/tune/val_pictures.txt ] || $PY -m landmarks.data --data-dir ../shared/course-data --out-dir lists/tune \
    --test-ratio 0.1 --val-ratio 0.1 --seed 0
[ -f lists/tune3f/train.txt ] || $PY -m landmarks.data --data-dir ../shared/course-data --out-dir lists/tune3f \
    --test-ratio 0.1 --val-ratio 0.1 --seed 0 --negatives 3 --negative-kinds random,partial,loose \
    --detector-negatives runs/before/faces-tune-a.pt --framed-positives runs/before/stage3-tune.pt
[ -f lists/lfpw68/train_pictures.txt ] || $PY -m landmarks.data --format pts --data-dir ../shared/lfpw-68/trainset \
    --out-dir lists/lfpw68 --test-ratio 0
[ -f lists/tune-mosaics/mosaics.txt ] || $PY scripts/tools/make_mosaics.py --pictures lists/tune/val_pictures.txt \
    --out-dir lists/tune-mosaics
[ -f lists/tune-mosaics-480/mosaics.txt ] || $PY scripts/tools/make_mosaics.py --pictures lists/tune/val_pictures.txt \
    --out-dir lists/tune-mosaics-480 --size 480x360

det() {
    name=$1; shift
    [ -f "runs/$name/best.pt" ] || $PY -m landmarks.detector --phase finetune --model faces --config configs/faces.toml \
        --input-size 448 --epochs 10 --lr 0.0005 --face-threshold 0.2 --list-dir lists/tune3f \
        --test-list lists/tune3f/val_pictures.txt --quiet --run-name "$name" "$@"
}
det faces-pb05 --pose-balance 0.5
det faces-zoom4-pb05 --picture-zoom 4 --pose-balance 0.5

soup() {
    out=runs/soups/$1.pt; shift
    [ -f "$out" ] || $PY docs/experiments/weight_soup.py --out "$out" "$@"
}
soup faces-pb05-half --models faces runs/faces-pb05/best.pt
soup faces-zoom4-pb05-half --models faces runs/faces-zoom4-pb05/best.pt
soup pb05-zoom4-pb05 --models runs/faces-pb05/best.pt runs/faces-zoom4-pb05/best.pt
soup faces-pb05-zoom4-pb05 --models faces runs/faces-pb05/best.pt runs/faces-zoom4-pb05/best.pt

# Found / false faces a picture / why missed, on each set, for each finder.
for finder in faces runs/faces-pb05/best.pt runs/faces-zoom4-pb05/best.pt runs/soups/*.pt; do
    echo "== $finder"
    for pictures in lists/tune/val_pictures.txt lists/tune-mosaics/mosaics.txt lists/tune-mosaics-480/mosaics.txt \
            lists/lfpw68/train_pictures.txt; do
        $PY -m landmarks.detector --phase test --test-pictures "$pictures" --detector "$finder" --quiet | grep -E "^found|^missed"
    done
    $PY scripts/face_free_check.py --pictures lists/tune/val_pictures.txt --detector "$finder"
done
