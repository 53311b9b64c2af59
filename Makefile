# streamseg: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# PyTorch as installed here (pip takes these from the local disk); any torch>=2.5 works.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# sam2 builds an optional CUDA extension; 0 skips it (needed on machines without nvcc/CUDA).
SAM2_BUILD_CUDA ?= 0
STAMP := $(VENV)/.streamseg-installed

.PHONY: setup demo test lint browser

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q $(TORCH_SPEC)
	SAM2_BUILD_CUDA=$(SAM2_BUILD_CUDA) $(PY) -m pip install -q --no-build-isolation "sam2>=1.1.0"
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	touch $@

demo: setup
	$(VENV)/bin/streamseg demo --out demo-out

# The live-mode browser test drives Debian's Chromium; install it when we can (root + apt).
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

test: setup browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
