# InvisPose: `make run` installs and runs the appliance; `make test` installs and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/appliance.yaml

# Debian packages the test suite drives as real services (installed by `make test` when missing).
TEST_APT_PACKAGES := chromium shellcheck busybox

.PHONY: install install-test run test lint format bench clean vendor-web

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@scripts/system-deps.sh python3-venv
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

run: install
	$(BIN)/invispose run --config $(CONFIG)

test: install-test
	@scripts/system-deps.sh $(TEST_APT_PACKAGES)
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The web UI's browser libraries (package.json, exact versions in package-lock.json), copied into
# appliance/web/vendor/ and committed: installing the appliance needs no npm. Needs npm; run after a bump.
vendor-web:
	scripts/vendor-web.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
