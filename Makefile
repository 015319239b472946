# soundslike: every install step lives here, so a fresh clone needs only `make test` / `make demo`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements-dev.txt requirements-nodeps.txt crawler/requirements.txt \
	extractor/requirements.txt extractor/requirements-nodeps.txt \
	annoy_service/requirements.txt api/requirements.txt api/requirements-index.txt \
	dead_letters/requirements.txt history/requirements.txt history/requirements-import.txt
PORT ?= 8080
PLAYLIST ?=
FULL ?=
# make history USER=name: only a USER given on the command line counts, not the login name in the environment.
USER_ID := $(if $(filter command line,$(origin USER)),$(USER))
FILE ?=
CRAWL ?=
export PYTHONPATH := $(CURDIR)

.PHONY: help install chromium test test-fast bench-quick lint up down status crawl reextract extract index serve demo \
	history spotify-login listener-login feed deploy clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

install: $(STAMP) chromium ## build .venv with everything for tests, benchmarks and the local stack

# The web page's browser tests drive Debian's Chromium (Playwright cannot download browsers here).
chromium: ## Debian's chromium for the browser tests (skipped when already installed)
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "the browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 2; fi; }

# Re-runs only when a requirements file changes: a second `make install` takes no time.
$(STAMP): $(REQUIREMENTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

# The benches' --quick runs take longer than 20 s each (TensorFlow, 10k-vector indexes, a rendered
# catalogue), so they are not part of `make test` (what CI runs): `make bench-quick` runs them.
test: install ## run every test, the TensorFlow model tests included (not the quick benches)
	$(PY) -m pytest -m "not bench"

test-fast: install ## the tests without the TensorFlow model tests
	$(PY) -m pytest -m "not model and not bench"

bench-quick: install ## every bench/*.py --quick, checked for its JSON figures (tests/bench)
	$(PY) -m pytest -m bench

lint: install ## ruff + template checks (cfn-lint, SAM translation, our own rules)
	$(PY) -m ruff check .
	$(PY) -m infra.template_checks template.yaml

up: install ## start the local stack in the background (EXTRACT=1: pump the extractor too; WRITE_AUTH=jwt JWT_ISSUER=... JWT_AUDIENCE=...: writes take bearer tokens)
	$(PY) -m infra up $(if $(EXTRACT),--extract) $(if $(WRITE_AUTH),--write-auth $(WRITE_AUTH)) $(if $(JWT_ISSUER),--jwt-issuer '$(JWT_ISSUER)') $(if $(JWT_AUDIENCE),--jwt-audience '$(JWT_AUDIENCE)')

down: ## stop the local stack
	@if [ -x $(PY) ]; then $(PY) -m infra down; else echo "local stack is not running"; fi

status: install ## endpoints, pid, queue depths, tracks by status, published index
	$(PY) -m infra status

crawl: install ## crawl PLAYLIST=<Spotify playlist id/URI/URL, local folder or .m3u> into the local stack
	@test -n "$(PLAYLIST)" || { echo 'usage: make crawl PLAYLIST=<playlist id, URI, URL, folder or .m3u>'; exit 2; }
	$(PY) -m infra exec -- $(PY) -m crawler $(PLAYLIST)

reextract: install ## after MODEL_ID changes: fetch the audio of every ready track another model embedded again, for extraction
	$(PY) -m infra exec -- $(PY) -m crawler reextract

extract: install ## drain the local ExtractQueue through the extractor, with progress
	$(PY) -m infra extract

index: install ## heal, build or compact the published index (FULL=1: rebuild from the table, report drift)
	$(PY) -m infra exec -- $(PY) -m annoy_service $(if $(FULL),--full)

history: install ## import USER=<name> FILE="<export.json>..." into Listens and train their models (CRAWL=1: queue unmatched)
	@test -n "$(USER_ID)" -a -n "$(FILE)" || { echo 'usage: make history USER=<name> FILE="StreamingHistory_music_0.json ..." [CRAWL=1]'; exit 2; }
	$(PY) -m infra exec -- $(PY) -m history --user "$(USER_ID)" $(if $(CRAWL),--crawl) $(FILE)

serve: install ## serve the HTTP API on 127.0.0.1:$(PORT) against the local stack
	$(PY) -m infra exec -- $(PY) -m api serve --host 127.0.0.1 --port $(PORT)

demo: install ## the whole flow on a rendered demo catalogue (DEMO_ONCE=1: print and exit)
	$(PY) -m infra.demo --port $(PORT) $(if $(DEMO_ONCE),--once)

spotify-login: install ## one-time Spotify Authorization Code login (stores the refresh token)
	$(PY) -m infra exec -- $(PY) -m crawler login

listener-login: install ## link USER=<name>'s Spotify account for the recently-played feed (SSM SecureString)
	@test -n "$(USER_ID)" || { echo 'usage: make listener-login USER=<name>'; exit 2; }
	$(PY) -m infra exec -- $(PY) -m crawler listener-login "$(USER_ID)"

feed: install ## run the recently-played feed once for every linked listener (ListenerFeedFunction's job)
	$(PY) -m infra exec -- $(PY) -m crawler feed

deploy: ## stage, sam build, sam deploy --guided (needs the SAM CLI, Docker and AWS credentials)
	@command -v sam >/dev/null || { echo "install the AWS SAM CLI first (pip install aws-sam-cli)"; exit 2; }
	@ls $(LAMBDA_WHEELS)/annoy-*cp312*.whl >/dev/null 2>&1 || $(MAKE) lambda-wheels
	$(MAKE) stage
	sam build
	sam deploy --guided

clean: down ## remove the local stack's state and caches (keeps .venv)
	rm -rf .local .pytest_cache .ruff_cache .aws-sam build

# -- zip packages (sam build, BuildMethod: makefile) ---------------------------------------
# `make stage-<Function>` copies what the function's handler imports (its packages, catalog/, their
# requirements files, prebuilt wheels) and infra/lambda/Makefile into build/stage/<Function>, the
# CodeUri of the function in template.yaml. SAM copies that folder, not the repository, and runs its
# build-<Function> target; so does `make build-<Function> ARTIFACTS_DIR=<dir>` here, with no Docker.
STAGE_ROOT := build/stage
# Wheels of sdist-only dependencies built for Lambda (make lambda-wheels); copied into each stage.
LAMBDA_WHEELS := build/wheels
LAMBDA_BUILD_IMAGE := public.ecr.aws/sam/build-python3.12
ZIP_FUNCTIONS := CrawlerFunction AnnoyServiceFunction ApiFunction ApiWriteFunction ExtractDeadLetterFunction ListenerFeedFunction
# Packages each zip function's handler imports, besides catalog/ (which all of them import).
PACKAGES_CrawlerFunction := crawler
PACKAGES_AnnoyServiceFunction := annoy_service
PACKAGES_ExtractDeadLetterFunction := dead_letters
# One code package behind two functions (read routes, write routes): see template.yaml.
# GET /tracks/{trackId}/audio resolves previews with the crawler's Spotify and Deezer clients;
# POST /users/{userId}/history imports with history's parser and matcher (not its trainer).
PACKAGES_ApiFunction := api crawler history
PACKAGES_ApiWriteFunction := api crawler history
# The recently-played feed: the crawler's Spotify client, history's importer, the API's index reader
# (api first: its requirements file is the one installed, and it includes the other two).
PACKAGES_ListenerFeedFunction := api crawler history

# Pattern rules: make skips implicit rules for .PHONY targets, so only these two are listed.
.PHONY: stage lambda-wheels

stage: $(addprefix stage-,$(ZIP_FUNCTIONS)) ## stage every zip function for sam build (build/stage/<Function>)

stage-%:
	@test -n "$(PACKAGES_$*)" || { echo "$* is not a zip function of this Makefile ($(ZIP_FUNCTIONS))"; exit 2; }
	rm -rf "$(STAGE_ROOT)/$*" && mkdir -p "$(STAGE_ROOT)/$*/requirements"
	cp -r catalog $(PACKAGES_$*) "$(STAGE_ROOT)/$*/"
	for package in $(PACKAGES_$*); do mkdir -p "$(STAGE_ROOT)/$*/requirements/$$package" && \
		cp $$package/requirements*.txt "$(STAGE_ROOT)/$*/requirements/$$package/"; done
	echo "-r requirements/$(firstword $(PACKAGES_$*))/requirements.txt" > "$(STAGE_ROOT)/$*/requirements.txt"
	echo "$*" > "$(STAGE_ROOT)/$*/function.txt"
	echo "catalog $(PACKAGES_$*)" > "$(STAGE_ROOT)/$*/packages.txt"
	cp infra/lambda/Makefile "$(STAGE_ROOT)/$*/Makefile"
	if ls $(LAMBDA_WHEELS)/*.whl >/dev/null 2>&1; then mkdir -p "$(STAGE_ROOT)/$*/wheels" && \
		cp $(LAMBDA_WHEELS)/*.whl "$(STAGE_ROOT)/$*/wheels/"; fi
	find "$(STAGE_ROOT)/$*" -name __pycache__ -prune -exec rm -rf {} +

# PIP_ABI= (empty) builds for this interpreter instead of Lambda's (the packaging test does).
build-%: stage-%
	$(MAKE) --no-print-directory -C "$(STAGE_ROOT)/$*" build-$* ARTIFACTS_DIR="$(abspath $(ARTIFACTS_DIR))" \
		$(if $(filter undefined,$(origin PIP_ABI)),,PIP_ABI="$(PIP_ABI)") PIP="$(abspath $(PY)) -m pip"

# annoy ships only an sdist: compile it once in Lambda's own build image (glibc 2.34, CPython 3.12).
lambda-wheels: ## build annoy's wheel for Lambda in Docker (needed once before make deploy)
	mkdir -p $(LAMBDA_WHEELS)
	docker run --rm -v "$(abspath $(LAMBDA_WHEELS)):/wheels" $(LAMBDA_BUILD_IMAGE) \
		pip wheel --no-deps --no-binary annoy -w /wheels $$(grep -h '^annoy==' annoy_service/requirements.txt)
