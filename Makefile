# cairn — the standard verbs. `make run` starts cairn (and the lab cluster when no cluster is
# reachable) and drives the bookstore's MLOps loop; `make test` runs every test tier, bringing
# the lab up and down around them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
LAB := integration-tests/lab
# Cargo's parallelism on a 2-core machine; override with JOBS=N.
JOBS ?= 2
export CARGO_BUILD_JOBS := $(JOBS)

.PHONY: all build web deps run test test-unit e2e lint fmt bench dist lab-up lab-down clean executor

all: build

## deps: install what the build and tests need (idempotent; nothing when already present)
deps:
	scripts/ensure-deps
	scripts/mlflow-env >/dev/null

## web: build the SPA into web/dist (embedded by the binary)
web: deps
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build

## build: the UI, then the release binary with the UI embedded
build: web
	$(CARGO) build --release --locked

## run: the whole train -> eval -> register -> promote loop (scripts/run): cairn (the static
## binary `make executor` builds, which the workflow pods run too) against the cluster KUBECONFIG
## reaches, or the lab; a local Git server with examples/gitops; the bookstore pipeline fired by
## its dataset-ready event and followed to the serving model
run: executor
	scripts/run

## test: unit + integration + end-to-end (lab started and stopped around it when needed)
test: deps web
	integration-tests/run-all

## test-unit: tests that need no cluster
test-unit:
	$(CARGO) test --locked --all-targets

## e2e: end-to-end suites against the cluster KUBECONFIG points at (lab or kind)
e2e: deps web
	CAIRN_KEEP_CLUSTER=1 integration-tests/run-all

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: benchmarks; results are written to bench-results/. The lab benchmarks (gitops, events_lab,
## workflow) start the lab when it is down; when it cannot start they write "skipped: no cluster".
bench:
	mkdir -p bench-results
	$(CARGO) bench --locked --bench foundation -- --output bench-results/foundation.json
	$(CARGO) bench --locked --bench events -- --output bench-results/events.json
	$(CARGO) bench --locked --bench lineage -- --output bench-results/lineage.json
	if $(LAB)/up; then \
	  eval "$$($(LAB)/env)"; \
	  $(MAKE) --no-print-directory executor || echo "bench: make executor failed; the workflow benchmark uses the executor image already loaded, if any"; \
	  $(CARGO) bench --locked --bench gitops -- --output bench-results/gitops.json; \
	  $(CARGO) bench --locked --bench workflow -- --output bench-results/workflow.json; \
	  $(CARGO) bench --locked --bench events_lab -- --output bench-results/events_lab.json; \
	else \
	  echo "bench: the lab cannot start ($(LAB)/up failed): gitops and workflow benchmarks skipped"; \
	  for b in gitops workflow events_lab; do \
	    printf '{"benchmark": "%s", "skipped": "skipped: no cluster (%s failed)"}\n' "$$b" "$(LAB)/up" > bench-results/$$b.json; \
	  done; \
	fi

## dist: the air-gapped release tarball dist/cairn-<version>-linux-amd64.tar.gz (static binary
## with the UI, helm, kustomize, the executor image archive, CRDs, systemd unit, install.sh), built
## from HEAD, at most 60 MB;
## its binary is the executor image's (one musl build for both)
dist: executor
	scripts/dist

## executor: the static (musl) cairn binary with the UI embedded and the executor image
## localhost/cairn/executor:<version> (FROM scratch, only /cairn), loaded into the lab when it
## runs; cheap when nothing changed
executor: deps web/dist/index.html
	images/executor/build

# The UI the musl binary embeds, rebuilt only when its sources are newer (rewriting web/dist
# recompiles the binary: the files are embedded).
WEB_SOURCES := $(shell find web/src web/public web/index.html web/package.json web/package-lock.json \
	web/vite.config.ts web/tsconfig.json -type f 2>/dev/null)
web/dist/index.html: $(WEB_SOURCES)
	$(MAKE) --no-print-directory web

lab-up:
	$(LAB)/up

lab-down:
	$(LAB)/down

clean:
	$(CARGO) clean
	rm -rf web/dist dist
