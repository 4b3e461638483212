# Payam Iran — developer entry points. Quick start: `make run`, then `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test check bench stop clean install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## run: install, bring up the embedded PostgreSQL (unless PAYAM_DATABASE_URL is set), migrate,
##      create the master key and first admin token, start the SMSC simulator as operator
##      "mci", then serve on http://127.0.0.1:8040
run: $(STAMP)
	scripts/run.sh

## test: the whole suite against a real PostgreSQL
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

## check: lint, format check, strict typing, promtool on the alert rules and their tests
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	scripts/check-prometheus.sh

## bench: the benchmarks of docs/PERFORMANCE.md (needs PostgreSQL on 127.0.0.1:5432 or
##        PAYAM_TEST_DATABASE_URL); `make bench ARGS=--quick` for a short run
bench: $(STAMP)
	$(BIN)/python -m bench.run --write $(ARGS)

## stop: stop the embedded PostgreSQL
stop: $(STAMP)
	$(BIN)/payam db stop

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## soak: the long reliability runs of docs/RELIABILITY.md (not in `make test`): kill -9 three
##       times while 100,000 messages dispatch, then 30 minutes at 70% of measured capacity.
##       Shorter: `make soak SOAK_CRASH_ARGS="--messages 20000" SOAK_LOAD_ARGS="--minutes 2"`
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m bench.soak crash $(SOAK_CRASH_ARGS)
	$(BIN)/python -m bench.soak load $(SOAK_LOAD_ARGS)
