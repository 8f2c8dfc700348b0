# Berth: `make run` serves a local registry, `make test` runs every test,
# `make deploy` puts a stage in your AWS account (docs/deploy.md), `make destroy` removes it.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PORT  ?= 5000
HOST  ?= 127.0.0.1
STAGE ?= prod

.PHONY: run test lint unit e2e tools install bench clean deploy destroy

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Debian tools the end-to-end tests drive (skopeo, podman, docker.io, containerd, docker-registry,
# chromium), installed when absent.
tools:
	@bash scripts/install-tools

# BERTH_* settings pass through, e.g. a pull-through cache of Docker Hub (docs/cache.md):
#   make run BERTH_UPSTREAMS='{"hub/": {"url": "https://registry-1.docker.io"}}'
run: install
	$(PY) -m berth.local --host $(HOST) --port $(PORT)

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

test: install tools lint
	$(PY) -m pytest -q

# DOMAIN, ZONE (Route 53 zone id) or CERT (ACM certificate ARN) on the first run; remembered after,
# as is ALARMS (an SNS topic ARN told of failed verifications).
deploy: install
	$(PY) -m berth.deploy up --stage $(STAGE) $(if $(REGION),--region $(REGION)) \
		$(if $(DOMAIN),--domain $(DOMAIN)) $(if $(ZONE),--hosted-zone-id $(ZONE)) $(if $(CERT),--certificate-arn $(CERT)) \
		$(if $(ALARMS),--alarm-topic-arn $(ALARMS))

destroy: install
	$(PY) -m berth.deploy down --stage $(STAGE) $(if $(REGION),--region $(REGION))

bench: install
	$(PY) -m bench $(if $(BIG),--big)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/out
