PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/usher_test

.PHONY: install serve worker test test-sqlite test-postgres lint format schema migrations bench clean

$(BIN)/usher: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/usher

install: $(BIN)/usher  ## Create .venv and install Usher with its dev tools

serve: install  ## Migrate, then run the service on PORT (jobs in-process without REDIS_URL)
	$(BIN)/usher serve --port $(PORT)

worker: install  ## Run the arq worker against REDIS_URL
	$(BIN)/usher worker

test: install test-sqlite test-postgres  ## The whole suite, on SQLite and on PostgreSQL

test-sqlite: install
	TEST_DATABASE_URL= $(BIN)/pytest -q

test-postgres: install
	TEST_DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest -q

lint: install  ## ruff, ruff format --check, mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app tests

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: install  ## Rewrite schema.graphql from the code
	$(BIN)/usher export-schema

migrations: install  ## Write a migration for model changes
	$(BIN)/tortoise makemigrations

bench: install  ## Usher against its floor on PostgreSQL at 10k/100k/1M (BENCHMARKS.md); BENCH_ARGS="--sizes 10k --rounds 1"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
