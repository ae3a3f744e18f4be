# Two commands set everything up on a fresh machine:
#   make demo   the intake on its embedded defaults (SQLite, data in ./var); PORT=8080 to move it
#   make test   lint (ruff, bandit) and the whole test suite
# Both create .venv and install what they need, from the hash-pinned lock files in
# requirements/ (demo: the server's libraries only; test: everything). Every target can run
# again: it does only what is missing or out of date.

PYTHON ?= python3
PORT   ?= 8000
# The CPython of the reviewers' computer: 3.11 for Debian 12, 3.13 for Tails 7.
BUNDLE_PYTHON ?= 3.11
VENV   := .venv
BIN    := $(VENV)/bin
# What the virtualenv holds, one stamp per lock file installed into it.
DEMO_STAMP := $(VENV)/.installed-server
TEST_STAMP := $(VENV)/.installed-test
LOCK_TOOL  := $(VENV)/.installed-lock-tool
# The lock files are resolved for the reviewers' and the server's platform.
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_36
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL   = dist/intake-$(VERSION)-py3-none-any.whl

.PHONY: test demo lint install clean translations vendor screenshots lock dist offline-bundle bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The locked libraries, each file checked against its hash, then the intake itself, editable
# (its build compiles the catalogues in place). --no-deps: the lock has every dependency.
$(DEMO_STAMP): requirements/server.txt pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/server.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(TEST_STAMP): requirements/test.txt pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(TEST_STAMP) translations

# Compiled catalogues are built, never committed; the .po files are the source. The
# editable install compiles them too; this recompiles after a .po changes.
translations: $(TEST_STAMP)
	$(BIN)/pybabel -q compile -d intake/translations
	$(BIN)/pybabel -q compile -d intake/review/translations
	$(BIN)/pybabel -q compile -d intake/review/desk/translations

# ruff on everything; bandit on the application, failing on any medium or high
# finding (each "# nosec" in intake/ names its test and says why).
lint: $(TEST_STAMP)
	$(BIN)/ruff check intake tests bench tools setup.py
	$(BIN)/bandit -q -r intake --severity-level medium

test: lint translations
	$(BIN)/pytest

demo: $(DEMO_STAMP)
	$(BIN)/intake demo --port $(PORT)

# Every benchmark (bench/run_all.py; about an hour, most of it the browser's), one table of
# their outcomes, each output in bench/logs/. BENCH_ARGS=--readme rewrites README.md's
# table; BENCH_ARGS=--quick is a smoke run at small sizes. Needs age, nginx and chromium.
bench: $(TEST_STAMP) translations
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# The lock files, from pyproject.toml's dependency lists, by a hash-pinned uv
# (requirements/lock-tool.in names its version): one per install profile.
$(LOCK_TOOL): requirements/lock-tool.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/lock-tool.txt
	touch $@

lock: $(LOCK_TOOL)
	$(BIN)/uv pip compile --quiet --generate-hashes $(LOCK_TARGET) --custom-compile-command "make lock" \
	    pyproject.toml --extra server -o requirements/server.txt
	$(BIN)/uv pip compile --quiet --generate-hashes $(LOCK_TARGET) --custom-compile-command "make lock" \
	    pyproject.toml requirements/offline.in --extra review -o requirements/review.txt
	$(BIN)/uv pip compile --quiet --generate-hashes $(LOCK_TARGET) --custom-compile-command "make lock" \
	    pyproject.toml --extra test -o requirements/test.txt
	$(BIN)/uv pip compile --quiet --generate-hashes $(LOCK_TARGET) --custom-compile-command "make lock" \
	    requirements/lock-tool.in -o requirements/lock-tool.txt

# The sdist and the wheel (templates, static files, the vendored bundle and the compiled
# catalogues inside), in dist/.
dist: $(TEST_STAMP)
	rm -f dist/intake-$(VERSION).tar.gz $(WHEEL)
	$(BIN)/python -m build --outdir dist .

# dist/intake-offline-<version>.tar (BUNDLE_PYTHON=3.13: ...-cp313.tar): the wheel and every
# wheel of the review profile, the hash-pinned requirements and INSTALL.txt; prints its size,
# its SHA-256 and the digits to read out to the reviewers (docs/release.md).
offline-bundle: dist
	$(BIN)/python tools/offline_bundle.py --wheel $(WHEEL) --lock requirements/review.txt \
	    --out dist --python-version $(BUNDLE_PYTHON)

# The vendored age bundle for the browser, rebuilt from package-lock.json
# (reproducible: tests/test_vendor.py checks that the committed file matches).
vendor:
	npm ci --ignore-scripts --no-audit --no-fund && node frontend/build-vendor.mjs

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache build dist

# The safety page, the form and the thank-you page in every language, at phone
# and desktop widths, into docs/screenshots/ (needs Debian's chromium).
screenshots: $(TEST_STAMP) translations
	$(BIN)/pytest -q tests/test_accessibility.py -k screenshots
