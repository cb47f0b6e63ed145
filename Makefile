# Two commands set everything up on a fresh machine:
#   make run   create .venv, install the package and run the main job on its default config
#   make test  create .venv, install the package and run the test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test venv lint clean benchmarks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/nmbrl run --config nmbrl_brian/configs/cartpole_snn.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check nmbrl_brian equations experiments analysis tests

benchmarks: $(STAMP)
	$(BIN)/python experiments/baseline_dense.py --seeds 5 --out results/baseline_dense
	$(BIN)/python experiments/snn_model_free.py --seeds 5 --out results/snn_model_free
	$(BIN)/python experiments/world_model_quality.py --seeds 5 --out results/world_model_quality
	$(BIN)/python experiments/activity_sparse.py --seeds 5 --out results/activity_sparse

clean:
	rm -rf $(VENV) build *.egg-info
