# Two commands on a fresh machine with Python 3.10+ and Node.js:
#   make lab    install the kit in .venv and open the lessons in JupyterLab
#               (as root too; more options for it: make lab LAB_OPTIONS="--no-browser")
#   make test   install the kit and its test tools in .venv and run every test,
#               then the core tiers again at the lowest versions we allow
# and, while working on it:
#   make test-fast     the unit and integration tiers only (no browser, Lab, Node)
#   make test-lowest   those tiers at the lowest versions pyproject.toml allows

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NOTEBOOKS := $(wildcard notebooks/*.ipynb)
# The exact versions of the packages chatlab and its extras name: .venv is
# installed with them as constraints, as Binder is (binder/postBuild).
PINS := requirements/pins.txt
# Extra options for JupyterLab, e.g. LAB_OPTIONS="--no-browser --port=8890".
LAB_OPTIONS ?=
# JupyterLab refuses to run as root without being told it may.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test test-fast test-lowest install install-test install-lowest browser servers web-client clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python web-client
	$(BIN)/pip install --quiet -c $(PINS) -e '.[lab]'

lab: install
	$(BIN)/jupyter lab $(ALLOW_ROOT) $(LAB_OPTIONS) notebooks/00-start-here.ipynb

install-test: $(BIN)/python web-client
	$(BIN)/pip install --quiet -c $(PINS) -e '.[test]'
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

# The Socket.IO browser client that the chat server serves to its page, so
# that the page works without the internet: the npm package pinned in
# chatlab/web/vendor (package.json and its lock file). Without npm the page
# loads the same pinned file from a CDN instead. A stamp, because npm gives
# the files it installs an old time.
WEB_CLIENT := chatlab/web/vendor/node_modules/.installed

web-client: $(WEB_CLIENT)

$(WEB_CLIENT): chatlab/web/vendor/package.json chatlab/web/vendor/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix chatlab/web/vendor --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the chat page will load the Socket.IO client from the internet (install Node.js, then run make again)"; fi

# Browser tests drive Debian's chromium. Installed here when we may (root
# with apt-get); elsewhere the browser tests say how to get it.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium not found: install it (apt-get install chromium) or browser tests are skipped"; fi; }

# The tests of several chat servers start their own redis-server and nginx
# (on free ports, as the test's own processes): Debian's, installed here when
# we may (root with apt-get) and kept from starting as system services
# (policy-rc.d); elsewhere those tests say how to get them.
SERVERS := redis-server nginx

servers:
	@missing=""; \
	command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	      trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
	    fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "not found:$$missing: install them (apt-get install $(SERVERS)) or the tests of several servers are skipped"; fi; \
	fi

test: install-test browser servers
	$(BIN)/python -m pytest tests $(if $(NOTEBOOKS),--nbval $(NOTEBOOKS) --nbval-sanitize-with tests/nbval-sanitize.cfg)
	$(MAKE) test-lowest

test-fast: install-test servers
	$(BIN)/python -m pytest tests -m "unit or integration"

# A second venv with exactly the floors of pyproject.toml's dependencies
# (requirements/lowest.txt), redis at the floor of the cluster extra and
# uvicorn at the lab extra's (lesson 07's app runs under it); the
# test tools themselves may be new, and those the e2e modules import (not
# run here) are there so that every module loads.
# A stamp, because the venv's python is a link with an old time.
LOWEST := .venv-lowest

$(LOWEST)/.installed: requirements/lowest.txt pyproject.toml
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet -r requirements/lowest.txt 'redis==5.0.1' 'uvicorn==0.30.0' \
	    'pytest>=8' 'pytest-asyncio>=0.23' 'pytest-timeout>=2.2' \
	    nbformat nbclient jupyter_client playwright
	$(LOWEST)/bin/python -m pip install --quiet --no-deps -e .
	$(LOWEST)/bin/python -m pip check
	touch $@

install-lowest: $(LOWEST)/.installed

test-lowest: install-lowest
	$(LOWEST)/bin/python -m pytest tests -m "unit or integration"

clean:
	rm -rf $(VENV) $(LOWEST) tests/js/node_modules chatlab/web/vendor/node_modules tests/artifacts
