GO        ?= go
BIN       := bin/payrail
PKG       := ./...

# Integration tests talk to these services; .ci/run and a developer's
# machine both have them on loopback.
export PAYRAIL_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export PAYRAIL_TEST_NATS_URL     ?= nats://127.0.0.1:4222

.PHONY: build run test test-containers lint fmt
# The commit and build time are linked in for `payrail version` and
# payrail_build_info (Go stamps neither with -buildvcs=false).
LDFLAGS := -X main.commit=$(shell git rev-parse HEAD 2>/dev/null) -X main.buildTime=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/payrail

run: build
	./$(BIN) dev

# -p 2: at most two test packages at once, whatever the core count, so the
# suite holds at most 2 × testenv.PackageBudget PostgreSQL connections
# (docs/testing.md).
test: lint
	$(GO) test -race -count=1 -p 2 -timeout 15m $(PKG)

# The same tests against PostgreSQL and NATS containers that
# testcontainers-go starts, one of each per test package: the service URLs
# are cleared, so the harness (internal/testenv) starts containers. Needs a
# Docker engine; PAYRAIL_TEST_POSTGRES_IMAGE, PAYRAIL_TEST_NATS_IMAGE and
# PAYRAIL_TEST_DOCKER_HOST_NETWORK pass through (docs/testing.md).
test-containers:
	env -u PAYRAIL_TEST_DATABASE_URL -u PAYRAIL_TEST_NATS_URL \
		$(GO) test -race -count=1 -p 2 -timeout 15m $(PKG)

# The OpenAPI lint runs the linter pinned in tools/openapi-lint (redocly
# CLI, docs/testing.md) offline, with no telemetry and no update check. It
# runs when `npm ci` has installed it there (.ci/run does) and is skipped
# with a notice otherwise, so lint works on a machine without Node.
OPENAPI_LINT := tools/openapi-lint
REDOCLY      := $(OPENAPI_LINT)/node_modules/.bin/redocly

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKG)
	@if [ -x $(REDOCLY) ]; then \
		echo "redocly lint intake/openapi.yaml"; \
		REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
			$(REDOCLY) lint --config $(OPENAPI_LINT)/redocly.yaml --format=stylish intake/openapi.yaml; \
	else \
		echo "lint: OpenAPI lint skipped: the linter is not installed (needs Node.js and npm: cd $(OPENAPI_LINT) && npm ci --ignore-scripts)"; \
	fi
	@# Grafana dashboard and Prometheus rules (deploy/README.md); skips
	@# what needs jq or promtool when they are missing, with a notice.
	@deploy/observability/check.sh

fmt:
	gofmt -w $$(git ls-files '*.go')
