# Set-up and checks. Every target creates the virtual environment it needs when it is missing.
PYTHON ?= python3
VENV ?= .venv
VENV_TF5 ?= .venv-tf5
PYTEST_ARGS ?=
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test ci lint test-pinned test-tf5 test-slow test-slow-tf5 test-distributed clean

# Pinned, tested stack (constraints.txt): transformers 4.57.6 + optimum-onnx.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt torch==2.13.0
	$(VENV)/bin/pip install --quiet -c constraints.txt -e ".[dev,onnx,peft,search,plots,assets]"
	touch $@

# Newest transformers 5.x (no ONNX extra: optimum-onnx needs transformers 4.57).
$(VENV_TF5)/.installed: pyproject.toml constraints-tf5.txt
	$(PYTHON) -m venv $(VENV_TF5)
	$(VENV_TF5)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_TF5)/bin/pip install --quiet -c constraints-tf5.txt torch==2.13.0
	$(VENV_TF5)/bin/pip install --quiet -c constraints-tf5.txt -e ".[dev,peft,search,plots,assets]" "transformers>=5,<6"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/hf-bort demo

LINT_PATHS = $(wildcard src tests examples benchmarks)

# lint-imports: the import contracts in pyproject.toml ([tool.importlinter]: layers, leaf services, no cycles).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/lint-imports

test-pinned: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

test-tf5: $(VENV_TF5)/.installed
	$(VENV_TF5)/bin/python -c "import transformers; print('transformers', transformers.__version__)"
	$(VENV_TF5)/bin/python -m pytest -q $(PYTEST_ARGS)

# The README's test command: lint, the pinned stack, then transformers 5.x. Tests marked `slow` are left to test-slow.
test: lint test-pinned test-tf5

# Every test marked `slow` on the pinned stack: the two-rank CPU tests, the remote-code reloads of each family, the
# real-model demo.
test-slow: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m slow $(PYTEST_ARGS)

# The slow tests that depend on the transformers version (the remote-code reloads) on transformers 5.x; the two-rank
# tests run on the pinned stack only.
test-slow-tf5: $(VENV_TF5)/.installed
	$(VENV_TF5)/bin/python -m pytest -q -m slow --ignore=tests/ose/test_distributed.py \
		--ignore=tests/agora/test_distributed.py $(PYTEST_ARGS)

# What CI (.ci/run) runs: the README's command, then every slow test.
ci: test test-slow test-slow-tf5

# The multi-process tests alone (two CPU ranks under torch.distributed.run / spawn; marked slow).
test-distributed: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m slow tests/ose/test_distributed.py tests/agora/test_distributed.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(VENV_TF5) .pytest_cache .ruff_cache runs
