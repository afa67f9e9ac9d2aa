# autopatch — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/autopatch
PKGS  := ./...
# Tests and `make run` use TEST_DATABASE_URL / AUTOPATCH_DATABASE_URL when set,
# otherwise a throwaway PostgreSQL from the machine's initdb/pg_ctl.
WITHPG := $(GO) run ./internal/pgtemp/withpg
SCHEDULES := integrations/sccm/schedules.example.yaml

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z/_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

# The VCS revision for `autopatch version` when the toolchain cannot record it
# itself (a git worktree, GOFLAGS=-buildvcs=false); see internal/buildinfo.
BUILDINFO := github.com/autopatch/autopatch/internal/buildinfo
VCS_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
VCS_TIME     ?= $(shell TZ=UTC git log -1 --date=iso-strict-local --format=%cd 2>/dev/null | sed 's/+00:00$$/Z/')
VCS_MODIFIED ?= $(shell test -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo true || echo false)
LDFLAGS := -X $(BUILDINFO).revision=$(VCS_REVISION) -X $(BUILDINFO).vcsTime=$(VCS_TIME) -X $(BUILDINFO).modified=$(VCS_MODIFIED)

.PHONY: build
build: ## build bin/autopatch
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/autopatch

.PHONY: test
# -p 1: packages one at a time. The window tests and the demo assert that
# windows open and close within 2 s; run side by side on a 2-core machine they
# starve each other's timers. Tests inside a package still run in parallel.
test: check/integrations check/parsers check/observability check/chromium ## run every test against a real PostgreSQL (throwaway unless TEST_DATABASE_URL is set)
	$(WITHPG) -env TEST_DATABASE_URL -- $(GO) test -p 1 -count=1 -timeout 30m $(PKGS)

.PHONY: check/integrations
check/integrations: ## check the shipped SCOM management pack (xmllint, structure)
	bash integrations/scom/check.sh

.PHONY: check/chromium
check/chromium: ## install Chromium for the console's browser test when it is missing (root with apt-get)
	bash handlers/ui/chromium.sh

.PHONY: screenshots
screenshots: check/chromium ## drive the console in headless Chromium and write a PNG of each page to docs/screenshots
	$(WITHPG) -env TEST_DATABASE_URL -- env SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestConsoleInBrowser$$' ./handlers/ui

.PHONY: updateset
updateset: ## regenerate integrations/servicenow/autopatch.update_set.xml from the scripts beside it (make test fails when it is stale)
	$(GO) run ./internal/updateset/gen

.PHONY: check/observability
check/observability: ## check the Prometheus alerting rules (promtool check rules, promtool test rules; installs promtool from Debian's package prometheus)
	bash integrations/observability/check.sh

.PHONY: check/parsers
check/parsers: ## parse every PowerShell template (tree-sitter) and ServiceNow script, also those in the update set (acorn, ES5); installs them into .cache/parsers
	GO=$(GO) bash internal/parsecheck/check.sh --selftest

.PHONY: test/race
test/race: ## run every test with the race detector
	$(WITHPG) -env TEST_DATABASE_URL -- $(GO) test -p 1 -race -count=1 -timeout 45m $(PKGS)

.PHONY: lint
lint: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: bench
bench: ## run the benchmarks and print their figures
	$(WITHPG) -env TEST_DATABASE_URL -- $(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m $(PKGS)

.PHONY: chaos
# The crash suite (issue #13): CHAOS_ITERATIONS seeded iterations (about 13 s
# each; SEED=n replays a run), then the three named scenarios, which carry
# the build tag `chaos` so that `make test` does not run them. Both run even
# when the first fails; the target fails when either did.
CHAOS_ITERATIONS ?= 70
chaos: build ## the crash suite: 70 seeded SIGKILL/replica/outage iterations (about 55 of them crashes or dead replicas) judged by invariants, then the three named scenarios (about 18 min; SEED=n replays)
	@rc=0; ./$(BIN) chaos --iterations $(CHAOS_ITERATIONS) $(if $(SEED),--seed $(SEED)) || rc=1; \
	echo; echo "The three named scenarios (go test -tags chaos -run TestScenario ./internal/chaos):"; \
	set -o pipefail; $(GO) test -tags chaos -count=1 -timeout 10m -run '^TestScenario' -v ./internal/chaos 2>&1 \
	  | grep -vE 'scenario_test.go:[0-9]+: +[0-9]{2}:[0-9]{2}:' || rc=1; \
	exit $$rc

.PHONY: run
# The seeded estate (integrations/sim/estate.yaml), its control server on
# SIM_CONTROL_PORT (GET /state), and the schedules file plus TRY-IT, a one-off
# schedule whose window opens two minutes after the start (README "Try it").
SIM_SEED ?= integrations/sim/estate.yaml
SIM_CONTROL_PORT ?= 8081
run: build ## serve on :8080 against the seeded simulated estate (state on :8081/state), with a throwaway PostgreSQL unless AUTOPATCH_DATABASE_URL is set
	@mkdir -p .run; rm -f .run/sim.env; \
	./$(BIN) sim --seed $(SIM_SEED) --schedules $(SCHEDULES) --try-schedules .run/schedules.yaml \
	  --control-port $(SIM_CONTROL_PORT) --env-file .run/sim.env > .run/sim.log 2>&1 & sim=$$!; \
	trap 'kill $$sim 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 200); do [ -s .run/sim.env ] && break; sleep 0.1; done; \
	[ -s .run/sim.env ] || { echo "make run: the simulated estate did not start:"; cat .run/sim.log; exit 1; }; \
	set -a; . ./.run/sim.env; set +a; \
	export AUTOPATCH_API_TOKEN=dev-api-token AUTOPATCH_WEBHOOK_SECRET=dev-webhook-secret \
	       AUTOPATCH_SCHEDULES_FILE=.run/schedules.yaml AUTOPATCH_LOG_FORMAT=$${AUTOPATCH_LOG_FORMAT:-text} \
	       AUTOPATCH_STATUS_POLL_INTERVAL=$${AUTOPATCH_STATUS_POLL_INTERVAL:-30s}; \
	grep '^autopatch sim: schedule' .run/sim.log; \
	echo "make run: simulated estate up (.run/sim.env, state at $$AUTOPATCH_SIM_URL/state); API token dev-api-token, webhook secret dev-webhook-secret"; \
	$(WITHPG) -env AUTOPATCH_DATABASE_URL -- ./$(BIN) serve

.PHONY: demo
demo: build ## the whole mission in one command: throwaway PostgreSQL, simulated estate, serve, webhooks (about 90 s)
	./$(BIN) demo --summary-json demo-state.json --log-dir .run/demo

.PHONY: demo-tenants
demo-tenants: build ## two customers in one serve (issue #20): a tenants file, a simulated SCCM site, SCOM and ServiceNow each (about 30 s)
	./$(BIN) demo --tenants --summary-json demo-tenants-state.json --log-dir .run/demo-tenants
