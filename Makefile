# Guardian: `make run` brings the whole product up; `make test` runs the test suite.
# Both set everything up first on a machine with only Python 3.11 and pip.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SITE_URL ?= http://127.0.0.1:$(PORT)
# The embedded default generates its secrets under var/ (settings refuse to, unless told).
GUARDIAN_DEV_SECRETS ?= 1
export PORT SITE_URL GUARDIAN_DEV_SECRETS

.PHONY: run test install lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	# An existing environment is reused (`venv` refuses to recreate one that is a symlink).
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# face-recognition without its declared deps: they would build dlib from source (~9 min);
	# dlib-bin (in requirements.txt) is the same library, prebuilt.
	$(PY) -m pip install --quiet --no-deps face-recognition==1.3.0
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py migrate --noinput --database keys
	$(PY) manage.py seed_demo
	@echo
	@echo "Guardian is starting on http://127.0.0.1:$(PORT)/"
	@echo "Sign in as the demo parent (link valid 15 minutes, single use):"
	@$(PY) manage.py magic_link parent@example.com
	@echo
	$(VENV)/bin/honcho start -f Procfile -p $(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/child_page.py

clean:
	rm -rf $(VENV) var
