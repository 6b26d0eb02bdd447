# Two entry points (see README): `make demo` and `make test`. Both do all set-up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.s3k-installed

# Headless Linux machines render with EGL (Mesa's software rasteriser works without a GPU);
# macOS has no EGL and renders headless with its default CGL.
ifeq ($(shell uname)$(strip $(DISPLAY)),Linux)
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
endif

.PHONY: setup demo test test-slow lint benchmark clean

setup: $(STAMP)

# Torch first, so that nothing later pulls the multi-GB CUDA build on a CPU-only box:
#  1. a local CPU wheel torch==2.13.0 where the machine has one (pip's find-links),
#  2. else, without an NVIDIA GPU on Linux, the CPU wheel from PyTorch's CPU index,
#  3. else the default build (macOS wheels carry no CUDA; GPU boxes want CUDA).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	if $(PY) -c "import torch" 2>/dev/null; then \
	  echo "torch already installed: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif $(PIP) install --quiet --no-deps --no-index torch==2.13.0 2>/dev/null; then \
	  $(PIP) install --quiet torch==2.13.0; \
	elif [ "$$(uname)" = "Linux" ] && ! command -v nvidia-smi >/dev/null; then \
	  $(PIP) install --quiet torch --index-url https://download.pytorch.org/whl/cpu; \
	else \
	  $(PIP) install --quiet torch; \
	fi
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m s3k_envs.demo

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(PY) -m ruff check .

benchmark: $(STAMP)
	$(PY) -m benchmarks.throughput

clean:
	rm -rf $(VENV) runs
