# soundslike: every install step lives here, so a fresh clone needs only `make test` / `make demo`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements-dev.txt requirements-nodeps.txt crawler/requirements.txt \
	extractor/requirements.txt extractor/requirements-nodeps.txt extractor/requirements-dead-letters.txt \
	annoy_service/requirements.txt api/requirements.txt
PORT ?= 8080
PLAYLIST ?=
export PYTHONPATH := $(CURDIR)

.PHONY: help install test test-fast lint up down status crawl extract index serve demo \
	spotify-login deploy clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

install: $(STAMP) ## build .venv with everything for tests, benchmarks and the local stack

# Re-runs only when a requirements file changes: a second `make install` takes no time.
$(STAMP): $(REQUIREMENTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

test: install ## run every test, the TensorFlow model tests included
	$(PY) -m pytest

test-fast: install ## the tests without the TensorFlow model tests
	$(PY) -m pytest -m "not model"

lint: install ## ruff + template checks (cfn-lint, SAM translation, our own rules)
	$(PY) -m ruff check .
	$(PY) -m infra.template_checks template.yaml

up: install ## start the local stack in the background (EXTRACT=1: pump the extractor too)
	$(PY) -m infra up $(if $(EXTRACT),--extract)

down: ## stop the local stack
	@if [ -x $(PY) ]; then $(PY) -m infra down; else echo "local stack is not running"; fi

status: install ## endpoints, pid, queue depths, tracks by status, published index
	$(PY) -m infra status

crawl: install ## crawl PLAYLIST=<Spotify playlist id/URI/URL, local folder or .m3u> into the local stack
	@test -n "$(PLAYLIST)" || { echo 'usage: make crawl PLAYLIST=<playlist id, URI, URL, folder or .m3u>'; exit 2; }
	$(PY) -m infra exec -- $(PY) -m crawler $(PLAYLIST)

extract: install ## drain the local ExtractQueue through the extractor, with progress
	$(PY) -m infra extract

index: install ## build and publish the Annoy index from the local Tracks table
	$(PY) -m infra exec -- $(PY) -m annoy_service

serve: install ## serve the HTTP API on 127.0.0.1:$(PORT) against the local stack
	$(PY) -m infra exec -- $(PY) -m api serve --host 127.0.0.1 --port $(PORT)

demo: install ## the whole flow on a rendered demo catalogue (DEMO_ONCE=1: print and exit)
	$(PY) -m infra.demo --port $(PORT) $(if $(DEMO_ONCE),--once)

spotify-login: install ## one-time Spotify Authorization Code login (stores the refresh token)
	$(PY) -m infra exec -- $(PY) -m crawler login

deploy: ## sam build + sam deploy --guided (needs the SAM CLI, Docker and AWS credentials)
	@command -v sam >/dev/null || { echo "install the AWS SAM CLI first (pip install aws-sam-cli)"; exit 2; }
	sam build --use-container
	sam deploy --guided

clean: down ## remove the local stack's state and caches (keeps .venv)
	rm -rf .local .pytest_cache .ruff_cache .aws-sam

# -- sam build (BuildMethod: makefile): one zip package per function --------------------
# sam runs these with ARTIFACTS_DIR set, inside the Lambda build image with --use-container.
define build_function
	mkdir -p "$(ARTIFACTS_DIR)"
	cp -r catalog $(1) "$(ARTIFACTS_DIR)/"
	python -m pip install --quiet -r $(2) -t "$(ARTIFACTS_DIR)"
endef

build-CrawlerFunction:
	$(call build_function,crawler,crawler/requirements.txt)

# The dead-letter consumer needs only catalog/ and extractor/'s TensorFlow-free modules.
build-ExtractDeadLetterFunction:
	$(call build_function,extractor,extractor/requirements-dead-letters.txt)

build-AnnoyServiceFunction:
	$(call build_function,annoy_service,annoy_service/requirements.txt)

# The API reuses the crawler's code path for PUT /tracks/{trackId}.
build-ApiFunction:
	$(call build_function,api crawler,api/requirements.txt)
