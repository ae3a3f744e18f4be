# Two commands set everything up on a fresh machine:
#   make demo   the intake on its embedded defaults (SQLite, data in ./var)
#   make test   lint (ruff, bandit) and the whole test suite
# Both create .venv and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo lint install clean translations vendor screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) translations

# Compiled catalogues are built, never committed; the .po files are the source.
translations: $(STAMP)
	$(BIN)/pybabel -q compile -d intake/translations && $(BIN)/pybabel -q compile -d intake/review/translations

# ruff on everything; bandit on the application, failing on any medium or high
# finding (each "# nosec" in intake/ names its test and says why).
lint: $(STAMP)
	$(BIN)/ruff check intake tests bench
	$(BIN)/bandit -q -r intake --severity-level medium

test: lint translations
	$(BIN)/pytest

demo: $(STAMP) translations
	$(BIN)/intake demo

# The vendored age bundle for the browser, rebuilt from package-lock.json
# (reproducible: tests/test_vendor.py checks that the committed file matches).
vendor:
	npm ci --ignore-scripts --no-audit --no-fund && node frontend/build-vendor.mjs

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache

# The safety page, the form and the thank-you page in every language, at phone
# and desktop widths, into docs/screenshots/ (needs Debian's chromium).
screenshots: $(STAMP) translations
	$(BIN)/pytest -q tests/test_accessibility.py -k screenshots
