# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned as a pair that import together.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO := demo-out

.PHONY: demo test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev,export]"
	touch $@

demo: install
	rm -rf $(DEMO)
	$(PY) -m landmarks.data --data-dir data --out-dir $(DEMO)/lists --test-ratio 0.2 --seed 0 --verify 8
	$(PY) -m landmarks.detector --phase train --config configs/stage1.toml --data-dir data \
		--list-dir $(DEMO)/lists --runs-dir $(DEMO)/runs --run-name stage1 --epochs 15 --cache-dir $(DEMO)/cache
	$(PY) -m landmarks.detector --phase test --model $(DEMO)/runs/stage1/best.pt \
		--test-list $(DEMO)/lists/test.txt --metrics-json $(DEMO)/metrics.json --no-cache
	$(PY) -m landmarks.detector --phase predict --model $(DEMO)/runs/stage1/best.pt \
		--image data/II/$$(head -1 data/II/label.txt | cut -d' ' -f1) --out $(DEMO)/prediction.png
	$(PY) -m landmarks.detector --phase predict --image data/I/000421.jpg --out $(DEMO)/group.png --json
	$(PY) scripts/tools/make_clip.py data/I/000495.jpg $(DEMO)/clip.mp4 --motion pan --frames 50
	$(PY) -m landmarks.detector --phase predict --video $(DEMO)/clip.mp4 --out $(DEMO)/clip_landmarks.mp4 \
		--json-out $(DEMO)/clip.jsonl
	@echo "demo done: $(DEMO)/lists/verify.png, $(DEMO)/runs/stage1/loss.png, $(DEMO)/prediction.png," \
		"$(DEMO)/group.png (shipped face detector + stage3), $(DEMO)/clip_landmarks.mp4 and clip.jsonl (tracking)"

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(DEMO) runs lists predictions .pytest_cache
