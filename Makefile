# ECS blue/green workflow: a thin facade. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .tools/venv
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
STACK := local/stack.sh
CARGO ?= cargo

.PHONY: help tools build local-up local-down demo test unit e2e on-stack lint fmt-check clippy asl clean status approve promote abort rotate catalogue-check fuzz bench

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

test: tools lint asl infra-check build ## the whole suite: lints, ASL validation, infra checks, unit tests, end-to-end tests on the local stack
	$(MAKE) --no-print-directory on-stack

unit: ## unit tests only (no local stack)
	$(CARGO) test --workspace --exclude e2e

e2e: tools build ## the whole test suite on a fresh local stack, without lints
	$(MAKE) --no-print-directory on-stack

# One `cargo test` over the whole workspace, so the crates compile with one feature set:
# unit tests, the SDK adapters against moto (`#[ignore]`d without a stack) and the
# end-to-end suite. The stack is stopped whatever the outcome.
LOCAL_AWS := AWS_ENDPOINT_URL=http://127.0.0.1:$${BG_GATEWAY_PORT:-5100} AWS_ACCESS_KEY_ID=test \
	AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
on-stack:
	$(STACK) up
	status=0; $(LOCAL_AWS) $(CARGO) test --workspace --no-fail-fast -- --include-ignored --test-threads=4 || status=$$?; \
	$(STACK) down; exit $$status

lint: fmt-check clippy ## rustfmt and clippy, warnings are errors

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

asl: $(NODE_STAMP) ## validate the state machine definitions
	npx --no-install asl-validator --json-path statemachine/deploy.asl.json --json-path statemachine/rotate.asl.json

# People in the loop: bluegreen-ctl on the deployment EXECUTION=<execution ARN>, with the AWS
# credentials, region and endpoint of the environment (AWS_ENDPOINT_URL for the local stack).
rotate: build ## rotate the Dynatrace token secret SECRET=<name or ARN> now, on the running local stack
	@test -n "$(SECRET)" || { echo "usage: make rotate SECRET=<secret name or ARN> (the local stack must be up: make local-up)" >&2; exit 2; }
	$(LOCAL_AWS) target/debug/rotate "$(SECRET)"

catalogue-check: build ## check the deployment catalogue CATALOGUE=<file or directory> as the trigger reads it
	@test -n "$(CATALOGUE)" || { echo "usage: make catalogue-check CATALOGUE=<catalogue file or directory of *.json>" >&2; exit 2; }
	target/debug/bluegreen-ctl check-catalogue "$(CATALOGUE)"

status: ## where deployment EXECUTION=<execution ARN> is (bluegreen-ctl status)
approve: ## approve deployment EXECUTION=<arn> paused on an approval
promote: ## promote deployment EXECUTION=<arn>: skip its remaining steps
abort: ## abort deployment EXECUTION=<arn>: roll back to blue
status approve promote abort: build
	@test -n "$(EXECUTION)" || { echo "usage: make $@ EXECUTION=<execution ARN>" >&2; exit 2; }
	target/debug/bluegreen-ctl $@ "$(EXECUTION)"

# Benchmarks: the release functions under a local Runtime API, and whole deploys on the stack.
bench: tools build package ## measure functions and deploys on the local stack: writes bench/report.md
	$(CARGO) build --release $(addprefix -p ,$(FUNCTIONS))
	$(STACK) up
	status=0; $(LOCAL_AWS) $(CARGO) run --quiet -p bench || status=$$?; $(STACK) down; exit $$status

# Hostile input: cargo fuzz (installed into .tools/cargo) on every parser of outside input.
CARGO_FUZZ := .tools/cargo/bin/cargo-fuzz
$(CARGO_FUZZ):
	$(CARGO) install --locked --root .tools/cargo cargo-fuzz@0.13.2

fuzz: $(VENV_STAMP) $(CARGO_FUZZ) ## run each fuzz target FUZZ_SECONDS (default 30), seeded from events/
	local/fuzz.sh

clean: local-down ## stop the stack and remove build output and tools
	rm -rf target .tools .local node_modules fuzz/target fuzz/corpus fuzz/artifacts

# ---- Real AWS: release packages, Terraform, checks of infra/ --------------------------------
# The functions the Terraform module deploys; one zip each at target/lambda/<fn>/bootstrap.zip.
FUNCTIONS := validate create-green verify-health shift-traffic drain-blue rotate-secret trigger
LAMBDA_TARGET := aarch64-unknown-linux-gnu
CHECKOV_VENV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
TF_DIR ?= infra/examples/complete
TERRAFORM ?= terraform
TF_PLAN_ARGS ?=

.PHONY: package plan apply infra-check terraform-present

$(CHECKOV_STAMP): infra/tests/requirements.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/tests/requirements.txt
	touch $@

package: $(VENV_STAMP) ## release arm64 zips of the functions: target/lambda/<fn>/bootstrap.zip
	if command -v rustup >/dev/null; then rustup target add $(LAMBDA_TARGET); fi
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 \
	  --output-format zip $(addprefix --package ,$(FUNCTIONS))
	ls -l $(foreach f,$(FUNCTIONS),target/lambda/$(f)/bootstrap.zip)

terraform-present:
	@command -v $(TERRAFORM) >/dev/null 2>&1 || { \
	  echo "'$(TERRAFORM)' is not on PATH: make plan and make apply run your own Terraform (>= 1.5)" >&2; \
	  echo "against your AWS account. Install it, or point TERRAFORM=/path/to/terraform." >&2; exit 1; }

plan: terraform-present package ## terraform plan of $(TF_DIR) into $(TF_DIR)/tfplan (your Terraform, your AWS credentials)
	$(TERRAFORM) -chdir=$(TF_DIR) init -input=false
	$(TERRAFORM) -chdir=$(TF_DIR) plan -input=false -out=tfplan $(TF_PLAN_ARGS)

apply: terraform-present ## apply the plan `make plan` saved
	@test -f $(TF_DIR)/tfplan || { echo "no $(TF_DIR)/tfplan: run make plan first" >&2; exit 1; }
	$(TERRAFORM) -chdir=$(TF_DIR) apply -input=false tfplan
	rm -f $(TF_DIR)/tfplan

infra-check: $(VENV_STAMP) $(CHECKOV_STAMP) ## infra/: every .tf parses, checkov, least privilege derived from the code, ASL placeholders
	$(VENV)/bin/python infra/tests/check_infra.py --checkov $(CHECKOV_VENV)/bin/checkov
