# Two commands for a fresh machine with only python3: `make demo` and `make test`.
# Each creates .venv and installs the project into it when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test check lint ui demo-ui

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/research-pipeline demo

test: $(STAMP)
	scripts/ensure-test-services
	$(VENV)/bin/python -m pytest

# The fast tier, for while you work: everything but the end-to-end runs through Dagster or the
# CLI and the real services (`make test` runs those too).
check: $(STAMP)
	$(VENV)/bin/python -m pytest -m 'not e2e' -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

ui: $(STAMP)
	DAGSTER_HOME=$(CURDIR) $(VENV)/bin/dagster dev

# The demo's runs, warehouse and emulator, apart from real ones (under demo/).
demo-ui: $(STAMP)
	$(VENV)/bin/research-pipeline demo-ui
