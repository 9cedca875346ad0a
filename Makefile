# CloudCrm outbox: `make run` starts everything on embedded defaults, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test soak lint format migrate bench clean

install: $(STAMP)

# Rebuilt whenever pyproject.toml changes; from nothing on a fresh clone.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/python -m app dev

test: install
	$(BIN)/pytest

# The reliability scenarios at full size (3,000 orders each).
soak: install
	TEST_RELIABILITY_ORDERS=3000 $(BIN)/pytest tests/reliability

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Speed figures (needs PostgreSQL and RabbitMQ); writes bench/results/latest.json.
bench: install
	$(BIN)/python -m bench

migrate: install
	$(BIN)/python -m app migrate

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
