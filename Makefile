# seqpipe — two commands set up a fresh machine:
#   make demo   install (if needed) and run the whole pipeline on the offline demo data
#   make test   install (if needed) and run the whole test suite, end-to-end demo included
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
UV_VERSION := 0.13.9
# uv ignores pip's configuration: hand it the local wheel folders pip is configured with
# (that is where the CPU build of torch lives on the development and CI machines).
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
UV_FLAGS   := $(foreach d,$(FIND_LINKS),--find-links $(d))
export PATH := $(BIN):$(PATH)

.PHONY: demo test test-fast lint fmt lock report clean install condor-profile readme-results
.DEFAULT_GOAL := demo

install: $(VENV)/.installed
	@# Earlier versions copied start-up patches (.pth files) into the venv; they are gone (docs/architecture.md).
	@rm -f $(VENV)/lib/python*/site-packages/condor_config.pth $(VENV)/lib/python*/site-packages/seqpipe_dotted_config.pth

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --python $(VENV)/bin/python --compile-bytecode $(UV_FLAGS) -r requirements.lock
	$(VENV)/bin/uv pip install --python $(VENV)/bin/python --no-deps -e .
	@touch $@

# `seqpipe run` is snakemake with dotted overrides (and no HTCondor warning on a machine without a pool).
demo: install
	seqpipe run --profile profiles/local
	seqpipe run --profile profiles/local --report results/report/snakemake_report.html
	@echo
	@echo "Leaderboard:      results/report/leaderboard.md  (.csv, .html with plots)"
	@echo "Snakemake report: results/report/snakemake_report.html"
	@echo "MLflow runs:      $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///results/mlflow/mlflow.db"
	@echo
	@cat results/report/leaderboard.md

# The README's results table (between its results markers) from the last run's leaderboard:
# run `make demo` on a clean tree first.
readme-results: install
	$(BIN)/python -m seqpipe.evaluation.readme README.md results/report/leaderboard.csv

test: install
	$(BIN)/python -m pytest -v

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	snakemake --lint
	snakefmt --check Snakefile workflow/rules

fmt: install
	snakefmt Snakefile workflow/rules

# Re-resolve the lock from pyproject.toml. It compiles into a new file: uv would otherwise prefer
# the old lock's `torch==X` pin from the public index (CUDA build) over the local CPU wheel.
# torch is then locked without its +cpu label, so the lock installs the CPU wheel here and the
# regular wheel elsewhere.
lock: install
	rm -f requirements.lock.new
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev $(UV_FLAGS) --python-version 3.11 \
		--no-header --annotation-style line -o requirements.lock.new
	sed -i 's/^torch==\([0-9.]*\)+cpu/torch==\1/' requirements.lock.new
	@! grep -q '^nvidia-' requirements.lock.new || (echo "lock pulled CUDA packages: is the CPU torch wheel folder in pip's find-links?"; exit 1)
	mv requirements.lock.new requirements.lock

# One-time step so that `snakemake --profile condor` works from the project root: Snakemake looks
# for profiles by name in ~/.config/snakemake (or $XDG_CONFIG_HOME/snakemake), not in ./profiles.
condor-profile:
	mkdir -p "$${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake"
	ln -sfn "$(CURDIR)/profiles/condor" "$${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake/condor"
	@echo "snakemake --profile condor now uses $(CURDIR)/profiles/condor"

clean:
	rm -rf results resources logs .snakemake
