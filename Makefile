# Two commands on a fresh machine (README): `make reproduce` and `make test`.
# The venv is created on first use; torch is pinned to the local CPU wheel (STACK.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FIND_LINKS := $(shell pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p" | head -n1)
export DVC_NO_ANALYTICS := 1
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD := 1
export PYTHONHASHSEED := 0

.PHONY: venv reproduce reproduce-from-records test test-built report clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" uv
	UV_FIND_LINKS="$(FIND_LINKS)" $(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -e ".[test]" \
	  || $(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

# Bootstrap, then the whole pipeline from raw files to the leaderboard.
reproduce: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# The committed leaderboard from the committed run records (results/records) instead of
# refitting every model (hours on 2 cores): restore the records, then dvc repro. The run
# stages keep each restored record whose run key matches this checkout and fit the rest.
reproduce-from-records: $(STAMP)
	$(BIN)/python scripts/records_archive.py restore
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# Bootstrap, then the test suite.
test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

# The tests of built outputs (marker `built`: leakage, cards, records); need `make reproduce` first.
test-built: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -m built

clean-venv:
	rm -rf $(VENV)
