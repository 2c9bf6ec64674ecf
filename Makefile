# edgegw: build, test and release tasks. `make help` lists them.

GO          ?= go
BIN         := bin
PKG         := ./cmd/edgegw
PKGS        ?= ./...
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
# The commit time, reproducible: the clock guard's floor (a Pi clock before it is wrong).
BUILD_DATE  ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)
BUILDFLAGS  := -trimpath -ldflags '$(LDFLAGS)'
GOBIN       ?= $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
# staticcheck v0.8.2 (release 2026.2.2) is the first that supports Go 1.26.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(GOBIN)/staticcheck
TEST_TIMEOUT ?= 25m

# Debian packages the tests use as real peers (see README: Tests).
DEB_PACKAGES := mosquitto mosquitto-clients swtpm swtpm-tools tpm2-tools tpm-udev softhsm2 openssl \
	lintian qemu-user-static sslscan gcc-aarch64-linux-gnu libc6-dev-arm64-cross prometheus \
	nodejs chromium

# Commands the tests need that more than one package may provide, as command:package; the
# package is installed only when the command is missing (NodeSource's nodejs ships npm and
# conflicts with Debian's npm package).
DEB_COMMANDS := npm:npm

.PHONY: help build test lint deps demo bench crash powercut cross clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/edgegw for this machine
	$(GO) build $(BUILDFLAGS) -o $(BIN)/edgegw $(PKG)

test: ## install the test peers if missing, then run every test with -race
	@$(MAKE) --no-print-directory deps
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

lint: $(STATICCHECK) ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

$(STATICCHECK):
	GOBIN=$(GOBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Installs missing Debian packages quietly; runs apt-get update once, only when
# something is missing. Needs root when it has something to install.
deps: ## install the Debian test peers (mosquitto, swtpm, softhsm2, ...) when missing
	@command -v dpkg-query >/dev/null || { echo "make deps: dpkg-query not found; install by hand: $(DEB_PACKAGES)" >&2; exit 1; }; \
	missing=""; \
	for p in $(DEB_PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; \
	done; \
	for cp in $(DEB_COMMANDS); do \
	  command -v $${cp%%:*} >/dev/null || missing="$$missing $${cp#*:}"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "make deps: missing Debian packages:$$missing" >&2; \
	  echo "run as root: apt-get update && apt-get install -y --no-install-recommends$$missing" >&2; \
	  exit 1; \
	fi; \
	echo "make deps: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $$missing >/dev/null

demo: build ## the whole pipeline on this machine in a temp dir: sensors, gateway, upstream, outage
	$(BIN)/edgegw demo

# BenchmarkEdgegwVsMosquitto (cmd/edgegw) runs edgegw and a Mosquitto edge
# bridge against the same Debian mosquitto upstream and prints a table of
# edgegw/Mosquitto ratios (e2e throughput, latency, backlog drain, loss, mTLS
# connects, local pub/sub): about two minutes on its own.
# BenchmarkEdgegwVsMosquittoPaho (cmd/edgegw/bench_paho_test.go) is the
# third-party harness: paho.mqtt.golang publishers (window 50), the packaged
# config, upstream Receive Maximum 20 and 100; CPU, bytes written, peak RSS,
# fdatasyncs and idle CPU per edge: about four minutes. One of them alone:
#   go test -run '^$$' -bench '^BenchmarkEdgegwVsMosquittoPaho$$' -benchtime 1x -timeout 30m ./cmd/edgegw/
bench: ## run the benchmarks, edgegw vs Mosquitto included (needs `make deps`; several minutes)
	@$(MAKE) --no-print-directory deps
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m $(PKGS)

# The queue's crash tests at length (store/soak_test.go, store/powercut_test.go).
CRASH_CYCLES    ?= 500
POWERCUT_COPIES ?= 200
crash: ## kill -9 a real queue process CRASH_CYCLES times (500) at random points; 0 reopen failures, 0 lost
	EDGEGW_CRASH_CYCLES=$(CRASH_CYCLES) $(GO) test -count=1 -timeout 90m -run '^TestCrashSoak$$' -v ./store/

# Phase 1: the queue alone (store/powercut_test.go); phase 2: the daemon's
# whole state dir under a real `edgegw run` (cmd/edgegw/powercut_daemon_test.go).
POWERCUT_DAEMON_COPIES ?= 40
powercut: ## copy loop-mounted ext4 disks under load: the queue POWERCUT_COPIES times (200), then the daemon's state dir POWERCUT_DAEMON_COPIES times (40); nothing acknowledged lost (root)
	@$(MAKE) --no-print-directory deps
	EDGEGW_POWERCUT_COPIES=$(POWERCUT_COPIES) $(GO) test -count=1 -timeout 90m -run '^TestPowerCut$$' -v ./store/
	EDGEGW_POWERCUT_DAEMON_COPIES=$(POWERCUT_DAEMON_COPIES) $(GO) test -count=1 -timeout 60m -run '^TestPowerCutDaemon$$' -v ./cmd/edgegw/

# cross, deb, debs, nfpm, test-packaging: the packaging room's targets.
include packaging/packaging.mk

clean: ## remove build output
	rm -rf $(BIN) dist

# --- Scenarios at site scale (cmd/edgegw-load; issue 10). Long: not part of
# `make test`. Each exits non-zero when its acceptance check fails.
LOAD       := $(BIN)/edgegw-load
LOAD_FLAGS ?=

.PHONY: load scenario-building storm chaos tlsscan

load: build ## build bin/edgegw-load (and bin/edgegw)
	$(GO) build -o $(LOAD) ./cmd/edgegw-load

scenario-building: load ## 2,000 mTLS devices on one edgegw run: telemetry, commands, blast radius
	$(LOAD) building --edgegw $(BIN)/edgegw $(LOAD_FLAGS)

storm: load ## 2,000 devices reconnect at once; all back within 30 s
	$(LOAD) storm --edgegw $(BIN)/edgegw $(LOAD_FLAGS)

chaos: load ## >= 20 faults during a steady stream; 0 unexplained losses
	@$(MAKE) --no-print-directory deps
	$(LOAD) chaos --edgegw $(BIN)/edgegw $(LOAD_FLAGS)

tlsscan: ## sslscan the LAN listener of a real edgegw run
	@$(MAKE) --no-print-directory deps
	$(GO) test -count=1 -run '^TestTLSScan$$' -v ./cmd/edgegw-load
