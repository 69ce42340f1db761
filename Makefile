# Acuerdo: one-command set-up. `make demo` and `make test` are all a user needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell pyenv which python3.10 2>/dev/null || command -v python3.10 || echo python3.10)
VENV := .venv
RASA_VENV := .venv-rasa
APP_STAMP := $(VENV)/.stamp-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
RASA_STAMP := $(RASA_VENV)/.stamp-$(shell cat requirements-rasa.txt | sha1sum | cut -c1-12)
ACUERDO := $(VENV)/bin/acuerdo
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export RASA_TELEMETRY_ENABLED := false
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

.PHONY: help setup setup-app setup-rasa migrate train demo up test test-fast lint bench clean audit fuzz \
	validate nlu-report test-stories test-conversations

help:
	@echo "make demo   - set up everything and start Acuerdo with demo data"
	@echo "make test   - set up everything and run the whole test suite"
	@echo "make setup / migrate / train / lint / bench / clean"
	@echo "make audit  - pip-audit both environments (needs network; not part of make test)"
	@echo "make fuzz   - the hostile-input tests alone: body limits, parser and OpenAPI fuzzing"
	@echo "make validate / nlu-report / test-stories / test-conversations (Rasa quality gates)"

$(APP_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 10), "Python 3.10 is required (set PYTHON=/path/to/python3.10)"'
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	$(VENV)/bin/pip check
	@rm -f $(VENV)/.stamp-* && touch $@

$(RASA_STAMP): requirements-rasa.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 10), "Python 3.10 is required (set PYTHON=/path/to/python3.10)"'
	@test -x $(RASA_VENV)/bin/python || $(PYTHON) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install -q --upgrade "pip<24.1"
	$(RASA_VENV)/bin/pip install -q -r requirements-rasa.txt
	$(RASA_VENV)/bin/pip check
	@rm -f $(RASA_VENV)/.stamp-* && touch $@

setup-app: $(APP_STAMP)
setup-rasa: $(RASA_STAMP)
setup: setup-app setup-rasa

migrate: setup-app
	$(ACUERDO) migrate

train: setup
	$(ACUERDO) train

demo: setup migrate train
	$(ACUERDO) demo

up: setup migrate train
	$(ACUERDO) up

lint: setup-app
	$(VENV)/bin/ruff check bot actions tests bench
	$(VENV)/bin/ruff format --check bot actions tests bench
	$(VENV)/bin/mypy bot actions

# The whole suite: lint, types, unit and integration tests, the Rasa quality
# gates (data validation, NLU report, test stories) and a benchmark smoke run.
test: setup migrate
	$(MAKE) lint
	ACUERDO_TRAIN_CONFIG=$${ACUERDO_TRAIN_CONFIG:-config_ci.yml} $(ACUERDO) train
	$(VENV)/bin/python -m bench.bench_import --smoke
	$(VENV)/bin/python -m bench.bench_e2e --smoke --config $${ACUERDO_TRAIN_CONFIG:-config_ci.yml}
	$(VENV)/bin/pytest -q

test-fast: setup-app
	$(VENV)/bin/pytest -q -m "not rasa"

# Hostile input (docs/security.md): about 10,000 generated cases, under 3 minutes.
fuzz: setup-app
	$(VENV)/bin/pytest -q tests/test_body_limits.py tests/test_fuzz_parsers.py tests/test_fuzz_openapi.py

bench: setup migrate train
	$(VENV)/bin/python -m bench.bench_import
	$(VENV)/bin/python -m bench.bench_e2e
	$(VENV)/bin/python -m bench.bench_webhook_latency
	$(VENV)/bin/python -m bench.bench_gateway
	$(CI_MODEL_ENV) $(ACUERDO) train && $(CI_MODEL_ENV) $(VENV)/bin/python -m bench.bench_rasa
	$(CI_MODEL_ENV) $(VENV)/bin/python -m bench.bench_long_conversation
	$(CI_MODEL_ENV) $(VENV)/bin/python -m bench.bench_stuck_form
	$(CI_MODEL_ENV) $(VENV)/bin/python -m bench.bench_taps

# Known vulnerabilities in both environments, looked up in PyPI's JSON API (network needed,
# so not part of `make test`). A package that could not be looked up fails the audit too,
# instead of passing silently. Findings and how each is handled: docs/security.md.
AUDIT := $(VENV)/bin/pip-audit --vulnerability-service pypi --skip-editable --progress-spinner off
audit: setup
	@rc=0; for env in $(VENV) $(RASA_VENV); do \
		echo "== pip-audit $$env"; \
		out=$$(PIPAPI_PYTHON_LOCATION=$$env/bin/python $(AUDIT) 2>&1); status=$$?; \
		echo "$$out"; \
		if [ $$status -ne 0 ] || grep -q "could not be audited" <<< "$$out"; then rc=1; fi; \
	done; \
	[ $$rc -eq 0 ] || echo "pip-audit: findings or unaudited packages; see docs/security.md"; \
	exit $$rc

# The Rasa quality gates, one command each (make test runs them all).
CI_MODEL_ENV := ACUERDO_TRAIN_CONFIG=$${ACUERDO_TRAIN_CONFIG:-config_ci.yml}

validate: setup
	PYTHONPATH=. $(RASA_VENV)/bin/rasa data validate --max-history 5

nlu-report: setup migrate
	$(CI_MODEL_ENV) $(ACUERDO) train
	$(CI_MODEL_ENV) $(VENV)/bin/pytest -q -s tests/test_rasa_quality.py -k "held_out or entity_values"

test-stories: setup migrate
	$(CI_MODEL_ENV) $(ACUERDO) train
	$(CI_MODEL_ENV) $(VENV)/bin/pytest -q tests/test_rasa_quality.py -k test_story

test-conversations: setup migrate
	$(CI_MODEL_ENV) $(ACUERDO) train
	$(CI_MODEL_ENV) $(VENV)/bin/pytest -q tests/test_conversations.py

clean:
	rm -rf $(VENV) $(RASA_VENV) models .rasa results var
