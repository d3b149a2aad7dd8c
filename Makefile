.DEFAULT_GOAL := help
.PHONY: help up demo test lint fmt typecheck lock bench manifests dashboards

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

up: ## The whole system on this machine (same as ./scripts/up)
	./scripts/up

demo: ## Train a churn model and serve it (same as ./scripts/demo)
	./scripts/demo

test: ## Lint, type check and run every test (same as ./scripts/test)
	./scripts/test

lint: ## ruff check + format check
	uv run ruff check services tests charts && uv run ruff format --check services tests charts

fmt: ## Format and autofix
	uv run ruff format services tests charts && uv run ruff check --fix services tests charts

typecheck: ## mypy strict
	uv run mypy

lock: ## Re-resolve uv.lock (and the hashed build backend pins) after editing pyproject.toml
	uv lock
	echo 'hatchling==1.33.0' | uv pip compile --quiet --python-version 3.11 --generate-hashes \
	  --no-header --output-file build-constraints.txt -

bench: ## Run every benchmark; bench/results/<date>.json + .md (needs scripts/tools wrk nginx)
	uv run sluice bench

dashboards: ## Regenerate the Grafana dashboards (charts/sluice/dashboards/*.json) from code
	uv run python charts/sluice/dashboards/generate.py

manifests: ## Render the chart's default install into k8s/ (a test fails when it is stale)
	./scripts/manifests
