# The two commands (see README.md): `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test lint demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash .ci/install-system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: setup
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks
	$(BIN)/lint-imports

# Builds the control plane, Traefik and Flux from upstream Go modules and installs MLServer once (cached
# under ~/.cache/modelrollout), then tests in a private network where kwok's pod IPs are real.
test: lint
	$(BIN)/modelrollout dev-cluster build
	$(BIN)/modelrollout private-network -- $(BIN)/pytest

# The main job: a rollout story on real model servers behind Traefik (see README); it builds what is missing
# first, then runs itself in a private network. `modelrollout demo --simulator` tells it on the traffic simulator.
demo: setup
	$(BIN)/modelrollout dev-cluster build
	$(BIN)/modelrollout demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
