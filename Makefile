PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/usher_test

.PHONY: install lock serve worker test test-sqlite test-postgres lint format schema migrations bench graphiql clients clean

# The versions come from requirements-dev.lock; a dependency added to pyproject.toml since the
# lock was written is installed too (then `make lock` records it).
$(BIN)/usher: pyproject.toml requirements-dev.lock
	@test -x $(BIN)/python || { echo "== First install: creating $(VENV) and installing Usher's dependencies (a few minutes; later runs skip this)"; $(PYTHON) -m venv $(VENV); }
	@echo "== Installing dependencies from requirements-dev.lock into $(VENV)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/usher

install: $(BIN)/usher  ## Create .venv and install Usher with its dev tools

# LOCK_ARGS=--upgrade moves every pin to the newest version that fits.
lock: install  ## Rewrite requirements.lock and requirements-dev.lock from pyproject.toml, keeping the pins that still fit
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --quiet $(LOCK_ARGS) -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml -c requirements-dev.lock --python-version 3.11 --quiet -o requirements.lock

serve: install  ## Migrate, then run the service on PORT (jobs in-process without REDIS_URL)
	@echo "== Starting usher serve on http://127.0.0.1:$(PORT) (GraphiQL at /graphql; Ctrl-C stops it)"
	$(BIN)/usher serve --port $(PORT)

worker: install  ## Run the arq worker against REDIS_URL
	$(BIN)/usher worker

# Both databases at once, one run each (each makes its own PostgreSQL database, Redis and
# SMTP servers on free ports); each run's output goes to .test-logs/, shown in full if it failed.
test: install  ## The whole suite, on SQLite and on PostgreSQL side by side
	@mkdir -p .test-logs
	@echo "== the suite on SQLite and on PostgreSQL, side by side (output in .test-logs/)"
	@TEST_DATABASE_URL= $(BIN)/pytest -q > .test-logs/sqlite.log 2>&1 & sqlite=$$!; \
	TEST_DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest -q > .test-logs/postgres.log 2>&1 & postgres=$$!; \
	failed=""; \
	wait $$sqlite || failed="$$failed sqlite"; \
	wait $$postgres || failed="$$failed postgres"; \
	for run in sqlite postgres; do \
	  case " $$failed " in *" $$run "*) echo "== $$run: FAILED"; cat .test-logs/$$run.log;; \
	  *) echo "== $$run: $$(tail -n 1 .test-logs/$$run.log)";; esac; \
	done; \
	test -z "$$failed"

test-sqlite: install
	TEST_DATABASE_URL= $(BIN)/pytest -q

test-postgres: install
	TEST_DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest -q

lint: install  ## ruff, ruff format --check, mypy --strict, hadolint on the Dockerfile, compose.yaml against its schema
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app tests
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: install  ## Rewrite schema.graphql from the code
	$(BIN)/usher export-schema

migrations: install  ## Write a migration for model changes
	$(BIN)/tortoise makemigrations

bench: install  ## Usher against its floor on PostgreSQL at 10k/100k/1M (BENCHMARKS.md); BENCH_ARGS="--sizes 10k --rounds 1"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

CODEGEN := .venv-codegen/bin/ariadne-codegen

$(CODEGEN): clients/python/requirements.txt
	test -x .venv-codegen/bin/python || $(PYTHON) -m venv .venv-codegen
	.venv-codegen/bin/python -m pip install --quiet -r clients/python/requirements.txt
	touch $@

clients: $(CODEGEN)  ## Regenerate clients/ from schema.graphql and clients/operations, then type-check the TypeScript
	$(CODEGEN) client
	cd clients/typescript && npm ci --silent && npx graphql-codegen --config codegen.ts --silent && npx tsc --noEmit -p .

GRAPHIQL_PACKAGES := graphiql@3.8.3 react@18.3.1 react-dom@18.3.1

graphiql:  ## Refresh GraphiQL's vendored files (app/static/graphiql) from their npm packages
	rm -rf .graphiql && mkdir .graphiql
	cd .graphiql && npm pack --silent $(GRAPHIQL_PACKAGES) && for f in *.tgz; do mkdir $${f%.tgz} && tar xzf $$f -C $${f%.tgz}; done
	cp .graphiql/graphiql-*/package/graphiql.min.js .graphiql/graphiql-*/package/graphiql.min.css app/static/graphiql/
	cp .graphiql/graphiql-*/package/LICENSE app/static/graphiql/LICENSE.graphiql
	cp .graphiql/react-1*/package/umd/react.production.min.js app/static/graphiql/
	cp .graphiql/react-1*/package/LICENSE app/static/graphiql/LICENSE.react
	cp .graphiql/react-dom-*/package/umd/react-dom.production.min.js app/static/graphiql/
	cp .graphiql/react-dom-*/package/LICENSE app/static/graphiql/LICENSE.react-dom
	rm -rf .graphiql

clean:
	rm -rf $(VENV) .venv-codegen clients/typescript/node_modules *.egg-info .pytest_cache .mypy_cache .ruff_cache
