# Two commands on a fresh machine with Python 3.10+ (and Node.js for tests):
#   make lab    install the kit in .venv and open the lessons in JupyterLab
#   make test   install the kit and its test tools in .venv and run every test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: lab test install install-test browser clean

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

clean:
	rm -rf $(VENV) tests/js/node_modules tests/artifacts
