# Two commands on a fresh machine with Python 3.10+ (and Node.js for tests):
#   make lab    install the kit in .venv and open the lessons in JupyterLab
#   make test   install the kit and its test tools in .venv and run every test,
#               then the core tiers again at the lowest versions we allow
# and, while working on it:
#   make test-fast     the unit and integration tiers only (no browser, Lab, Node)
#   make test-lowest   those tiers at the lowest versions pyproject.toml allows

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: lab test test-fast test-lowest install install-test install-lowest browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[lab]'

lab: install
	$(BIN)/jupyter lab notebooks/00-start-here.ipynb

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

# Browser tests drive Debian's chromium. Installed here when we may (root
# with apt-get); elsewhere the browser tests say how to get it.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium not found: install it (apt-get install chromium) or browser tests are skipped"; fi; }

test: install-test browser
	$(BIN)/python -m pytest tests $(if $(NOTEBOOKS),--nbval $(NOTEBOOKS) --nbval-sanitize-with tests/nbval-sanitize.cfg)
	$(MAKE) test-lowest

test-fast: install-test
	$(BIN)/python -m pytest tests -m "unit or integration"

# A second venv with exactly the floors of pyproject.toml's dependencies
# (requirements/lowest.txt); the test tools themselves may be new, and those
# the e2e modules import (not run here) are there so that every module loads.
# A stamp, because the venv's python is a link with an old time.
LOWEST := .venv-lowest

$(LOWEST)/.installed: requirements/lowest.txt pyproject.toml
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet -r requirements/lowest.txt \
	    'pytest>=8' 'pytest-asyncio>=0.23' 'pytest-timeout>=2.2' \
	    nbformat nbclient jupyter_client playwright
	$(LOWEST)/bin/python -m pip install --quiet --no-deps -e .
	$(LOWEST)/bin/python -m pip check
	touch $@

install-lowest: $(LOWEST)/.installed

test-lowest: install-lowest
	$(LOWEST)/bin/python -m pytest tests -m "unit or integration"

clean:
	rm -rf $(VENV) $(LOWEST) tests/js/node_modules tests/artifacts
