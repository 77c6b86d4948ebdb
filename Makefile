# Kiteline's two commands: `make up` (set up and run) and `make test` (the whole suite).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The web UI's front-end files, pinned in package-lock.json, copied into the package (not a CDN).
VENDOR := src/kiteline/server/web/static/vendor
VENDOR_STAMP := $(VENDOR)/.installed-stamp
VENDOR_FILES := \
	node_modules/htmx.org/dist/htmx.min.js \
	node_modules/htmx.org/LICENSE:htmx.LICENSE \
	node_modules/swagger-ui-dist/swagger-ui-bundle.js \
	node_modules/swagger-ui-dist/swagger-ui.css \
	node_modules/swagger-ui-dist/LICENSE:swagger-ui.LICENSE
# `make up PORT=8081 AGENTS=4`
PORT ?= 8080
AGENTS ?= 2

.PHONY: up test lint check-types check-imports bench clean

$(STAMP): pyproject.toml $(VENDOR_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(VENDOR_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	@for entry in $(VENDOR_FILES); do \
		source=$${entry%%:*}; target=$${entry#*:}; [ "$$target" = "$$entry" ] && target=$$(basename $$source); \
		cp "$$source" "$(VENDOR)/$$target" || exit 1; \
	done
	touch $(VENDOR_STAMP)

up: $(STAMP)
	$(BIN)/kiteline up --port $(PORT) --agents $(AGENTS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

check-types: $(STAMP)
	$(BIN)/mypy

check-imports: $(STAMP)
	$(BIN)/lint-imports

test: lint check-types check-imports
	$(BIN)/pytest

# The benchmarks of docs/performance.md, against Buildbot in the same run (about 15 minutes).
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null 2>&1; } \
		|| echo "wrk not found (Debian package wrk): bench/rest.py falls back to its Python client"
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules $(VENDOR)
