# EverTask for Python: `make demo` runs the FastAPI sample, `make test` runs every check.
# Both create .venv and install what they need (including Debian packages, as root).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
DEMO_PORT ?= 8000
DOCS_PORT ?= 8001
SITE_DIR ?= build/site

.PHONY: help install system-deps test lint typecheck pytest demo bench clean docs docs-build dist

help:
	@echo "make demo   - run the FastAPI demo on http://127.0.0.1:$(DEMO_PORT)/"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make bench  - python -m benchmarks engine --quick"
	@echo "make docs   - serve the documentation site on http://127.0.0.1:$(DOCS_PORT)/"
	@echo "make dist   - build the wheel and sdist of every distribution into dist/"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@# a .venv made when the root project was named evertask: its stale metadata goes
	@$(PY) -m pip uninstall --quiet --disable-pip-version-check --yes evertask 2>/dev/null || true
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: system-deps $(STAMP)

# Debian packages: unixODBC (pyodbc, the SQL Server storage), Chromium (the dashboard's
# browser tests, driven by Playwright) and Node.js with npm (ui-check: the dashboard's type
# check, unit tests and build); installed with apt when missing and run as root. A Node or
# npm already on PATH is used as it is (never upgraded); ui-check needs Node 20.19 or later
# (Vite 8), which Debian 12's own nodejs (18) is not: use a newer Node where it is older.
system-deps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q 'libodbc.so.2' || missing="$$missing unixodbc"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages:$$missing"; \
			(apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "note: missing Debian packages:$$missing (apt-get install$$missing)"; \
		fi; \
	fi

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

# The engine tests run a second time with every declared fast path switched off
# (EVERTASK_FAST_PATHS=0), so a fast path that drifts from the canonical path fails a test.
pytest: $(STAMP)
	$(PY) -m pytest -q
	EVERTASK_FAST_PATHS=0 $(PY) -m pytest -q tests/engine tests/storage/test_engine_integration.py tests/crash

# The documentation site (mkdocs.yml): docs/ plus an API reference from the docstrings.
# docs-build is strict, so a broken link or anchor, or a docstring griffe cannot parse, fails.
docs: $(STAMP)
	$(PY) -m mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --clean --site-dir $(SITE_DIR)

test: install lint typecheck docs-build ui-check pytest

# One distribution per top-level package (packaging/<name>/pyproject.toml), each wheel and
# sdist built into dist/ (scripts/build_dists.py; tests/packaging builds them on its own).
dist: $(STAMP)
	$(PY) scripts/build_dists.py --out dist

demo: install
	$(PY) -m samples.fastapi_app --port $(DEMO_PORT)

bench: install
	$(PY) -m benchmarks engine --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build dist *.egg-info

# The monitoring dashboard (React + TypeScript + Vite) ships prebuilt in
# evertask_monitor_api/static, so `pip install` users need no Node.
UI_DIR := evertask_monitor_api/ui

.PHONY: ui ui-check

ui:
	cd $(UI_DIR) && npm ci --no-audit --no-fund && npm run build

ui-check: system-deps
	@command -v node >/dev/null && command -v npm >/dev/null \
	  || { echo "ui-check needs Node.js 20.19+ and npm: apt-get install nodejs npm"; exit 1; }
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
	  || { echo "ui-check needs Node.js 20.19 or later (Vite 8); found $$(node --version)"; exit 1; }
	@tmp=$$(mktemp -d); \
	( cd $(UI_DIR) && npm ci --no-audit --no-fund >/dev/null && npm run typecheck && npm test \
	  && npx vite build --outDir $$tmp --emptyOutDir --logLevel warn ) \
	&& diff -r $$tmp $(UI_DIR)/../static \
	&& echo "ui-check: the shipped dashboard matches a fresh build of the sources"; \
	rc=$$?; rm -rf $$tmp; exit $$rc
