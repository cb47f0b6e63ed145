# Two commands set everything up on a fresh machine:
#   make run   create .venv, install the package and run the main job on its default config
#   make test  create .venv, install the package and run the test suite
# Python 3.12 (brian2 2.10.1, current numpy, the cuda extra) when present, else 3.11 (brian2 2.9.0,
# numpy<2.4); both install the dask extra (Dask distributed and pyarrow, for `nmbrl sweep`). pyenv
# installs are found even when pyenv's global version is another one.
PY_CANDIDATES := python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) \
                 python3.11 $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11)
PYTHON ?= $(firstword $(foreach p,$(PY_CANDIDATES),$(shell $(p) -c 'print("$(p)")' 2>/dev/null)))
EXTRAS ?= $(if $(findstring 3.12,$(PYTHON)),dev$(COMMA)dask$(COMMA)cuda,dev$(COMMA)dask)
COMMA  := ,
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test venv lint clean benchmarks

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: no python3.12 or python3.11 found" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml Makefile
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/nmbrl run --config nmbrl_brian/configs/cartpole_mbrl_lean.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check nmbrl_brian experiments analysis tests

benchmarks: $(STAMP)
	$(BIN)/python experiments/baseline_dense.py --seeds 5 --out results/baseline_dense
	$(BIN)/python experiments/snn_model_free.py --seeds 5 --out results/snn_model_free
	$(BIN)/python experiments/snn_model_free.py --seeds 5 --device cpp_standalone --out results/snn_model_free_cpp
	$(BIN)/python experiments/world_model_quality.py --transitions 100,300,1000,5000 --seeds 5 --out results/world_model_quality
	$(BIN)/python experiments/sample_efficiency.py --seeds 5 --workers 2 --out results/sample_efficiency
	$(BIN)/python experiments/benchmark_speed.py --seeds 1 --out results/benchmark_speed
	$(BIN)/python experiments/parallel_speedup.py --seeds 3 --out results/parallel_speedup
	$(BIN)/python experiments/energy_report.py --seeds 5 --out results/energy_report
	$(BIN)/python experiments/activity_sparse.py --seeds 5 --out results/activity_sparse
	$(BIN)/python experiments/acrobot.py --seeds 5 --workers 2 --out results/acrobot
	$(BIN)/python experiments/learning_cost.py --seeds 10 --workers 2 --out results/learning_cost

clean:
	rm -rf $(VENV) build *.egg-info
