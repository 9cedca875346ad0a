# CloudCrm outbox: `make run` starts everything on embedded defaults, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: install install-runtime browser run test soak lint docs format migrate bench constraints clean

# The development extras (tests, linters, the browser driver, the bench's chart) beside
# the runtime dependencies. Rebuilt whenever pyproject.toml changes; from nothing on a
# fresh clone.
install: $(STAMP)

$(STAMP): pyproject.toml demo/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . -e ./demo --group dev
	touch $(STAMP) $(RUNTIME_STAMP)

# The runtime dependencies alone: what `make run` needs.
install-runtime: $(RUNTIME_STAMP)

$(RUNTIME_STAMP): pyproject.toml demo/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . -e ./demo
	touch $(RUNTIME_STAMP)

# `make run PORT=8010` when 8000 is taken.
PORT ?= 8000

run: install-runtime
	$(BIN)/python -m app dev --port $(PORT)

# The browser tests drive Chromium (Debian's package; Playwright's own download needs the
# internet). Installed here when missing: as root, or through sudo.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (the browser tests drive it)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi; }

# Two test processes, each taking a whole test file at a time (its module fixtures stay
# whole): most of the suite waits on servers and subprocesses, so two overlap well on
# two cores. The files go out in the order collected (the long layers first, see
# tests/conftest.py). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: install browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The long runs `make test` leaves out: the tests marked soak (2,000 orders under load,
# a thousand racing cancels, the three-node RabbitMQ cluster, schemathesis at 200 examples
# per operation), then the reliability scenarios at full size (3,000 orders each).
soak: install
	TEST_RELIABILITY_ORDERS=3000 $(BIN)/pytest -m soak
	TEST_RELIABILITY_ORDERS=3000 $(BIN)/pytest tests/reliability

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The documentation site: the generated references (docs/reference/), then the site in site/.
docs: install
	$(BIN)/python -m tools.reference_docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Speed figures (needs PostgreSQL and RabbitMQ); writes bench/results/latest.json.
bench: install
	$(BIN)/python -m bench

# The Docker image's pins (docker/constraints.txt), from this tested virtualenv.
constraints: install
	$(BIN)/python docker/pin_constraints.py

migrate: install-runtime
	$(BIN)/python -m app migrate

clean:
	rm -rf $(VENV) var site .pytest_cache .mypy_cache .ruff_cache
