# ECS blue/green workflow: a thin facade. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .tools/venv
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
STACK := local/stack.sh
CARGO ?= cargo

.PHONY: help tools build local-up local-down demo test unit e2e on-stack lint fmt-check clippy asl clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV_STAMP): local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r local/requirements.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

tools: $(VENV_STAMP) $(NODE_STAMP) ## install moto, cargo-lambda (.tools/venv) and asl-validator (node_modules)

build: ## build the gateway, the demo and every function binary
	$(CARGO) build --workspace --bins

local-up: tools build ## start the local stack (moto, gateway, cargo lambda watch) on loopback
	$(STACK) up

local-down: ## stop the local stack (safe after a failed run)
	$(STACK) down

demo: tools build ## a complete local blue/green deploy, rollback and summary on the local stack
	$(STACK) up
	status=0; target/debug/demo || status=$$?; $(STACK) down; exit $$status

test: tools lint asl build ## the whole suite: lints, ASL validation, unit tests, end-to-end tests on the local stack
	$(CARGO) test --workspace --exclude e2e
	$(MAKE) --no-print-directory on-stack

unit: ## unit tests only (no local stack)
	$(CARGO) test --workspace --exclude e2e

e2e: tools build ## end-to-end tests only, on a fresh local stack
	$(MAKE) --no-print-directory on-stack

# The tests that need the local stack: the SDK adapters against moto, then the end-to-end
# suite. The stack is stopped whatever the outcome.
LOCAL_AWS := AWS_ENDPOINT_URL=http://127.0.0.1:$${BG_GATEWAY_PORT:-5100} AWS_ACCESS_KEY_ID=test \
	AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
on-stack:
	$(STACK) up
	status=0; { $(LOCAL_AWS) $(CARGO) test -p bluegreen --lib -- --ignored local_aws \
	  && $(CARGO) test -p e2e -- --test-threads=4; } || status=$$?; \
	$(STACK) down; exit $$status

lint: fmt-check clippy ## rustfmt and clippy, warnings are errors

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

asl: $(NODE_STAMP) ## validate the state machine definitions
	npx --no-install asl-validator --json-path statemachine/deploy.asl.json

clean: local-down ## stop the stack and remove build output and tools
	rm -rf target .tools .local node_modules
