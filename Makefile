# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# GUI tests need a display; use Xvfb when none is set and xvfb-run exists.
XVFB   := $(shell if [ -z "$$DISPLAY" ] && command -v xvfb-run >/dev/null; then echo 'xvfb-run -a -s "-screen 0 1600x1000x24"'; fi)

.PHONY: run test install dev clean bench screenshots

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

run: $(VENV)/.installed
	$(VENV)/bin/segstudio --sample nuclei2d

test: $(VENV)/.dev-installed
	$(XVFB) $(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.dev-installed
	$(PIP) install -q -e ".[bench]"
	$(PY) benchmarks/run_all.py --quick

screenshots: $(VENV)/.installed
	$(XVFB) $(PY) docs/make_screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
