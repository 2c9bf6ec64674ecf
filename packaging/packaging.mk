# Cross builds and the Debian package. Included by the top-level Makefile (include
# packaging/packaging.mk); uses its LDFLAGS (version and commit via -X) when set.
#
#   make cross                      bin/amd64/edgegw bin/arm64/edgegw bin/armhf/edgegw
#   make deb ARCH=arm64|armhf|amd64 dist/edgegw_<debian version>_<arch>.deb
#   make debs                       all three packages
#   make test-packaging             the packaging tests only (contents, lintian, qemu, dpkg -i)
#
# Linking, per architecture:
#   amd64, arm64  cgo (PKCS#11 through crypto11), glibc linked dynamically, PIE; the package
#                 depends on libc6 (>= 2.34), which Debian 12 and Raspberry Pi OS bookworm have.
#   armhf         pure Go, static, GOARM=6 so it runs on the ARMv6 Pi Zero/1 (Debian's armhf C
#                 toolchain targets ARMv7); PKCS#11 is compiled out with a clear message.
# All are stripped (-s -w) and built with -trimpath: lintian refuses unstripped binaries.

GO ?= go
ARCH ?= amd64
# configs/ is the one source: edgegw.yaml is the conffile /etc/edgegw/edgegw.yaml; every site
# layout, the example registry and the example policies go to /usr/share/doc/edgegw/examples.
DEB_CONFFILE := configs/edgegw.yaml
DEB_EXAMPLES := configs/*.yaml
DEB_EXAMPLE_POLICIES := configs/policies/*.json
# Test peers of the packaging tests, beyond the top-level Makefile's list (make deps).
DEB_PACKAGES += logrotate bash-completion man-db groff-base zsh fish
NFPM_VERSION := v2.45.2
GO_BIN_DIR := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
NFPM := $(GO_BIN_DIR)/nfpm
CROSS_ARCHES := amd64 arm64 armhf
CROSS_LDFLAGS = $(if $(filter -s,$(LDFLAGS)),,-s -w) $(LDFLAGS)
DEB_VERSION = $(shell packaging/debversion.sh)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
DEB_STAGE = dist/stage/$(ARCH)
# The man pages come from the help of a binary this machine can run.
HOST_ARCH := $(shell $(GO) env GOHOSTARCH | sed 's/^arm$$/armhf/')

env_amd64 := GOOS=linux GOARCH=amd64 CGO_ENABLED=1
flags_amd64 := -buildmode=pie
env_arm64 := GOOS=linux GOARCH=arm64 CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc
flags_arm64 := -buildmode=pie
env_armhf := GOOS=linux GOARCH=arm GOARM=6 CGO_ENABLED=0
flags_armhf :=
libc_dep_amd64 := libc6 (>= 2.34)
libc_dep_arm64 := libc6 (>= 2.34)
libc_dep_armhf :=

.PHONY: cross debs deb nfpm test-packaging FORCE

cross: $(addprefix bin/,$(addsuffix /edgegw,$(CROSS_ARCHES))) ## bin/{amd64,arm64,armhf}/edgegw (arm64/amd64 cgo+PKCS#11, armhf static ARMv6)

# Always handed to go build: its cache decides what is stale.
FORCE:
bin/%/edgegw: FORCE
	@case "$*" in amd64|arm64|armhf) ;; *) echo "unknown ARCH '$*': use amd64, arm64 or armhf" >&2; exit 2;; esac
	@if [ "$*" = arm64 ] && [ "$(HOST_ARCH)" != arm64 ] && ! command -v aarch64-linux-gnu-gcc >/dev/null; then \
		echo "aarch64-linux-gnu-gcc not found: run \`make deps\` (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2; exit 1; fi
	$(if $(filter $(HOST_ARCH),$*),$(filter-out CC=%,$(env_$*)),$(env_$*)) \
		$(GO) build -trimpath $(flags_$*) -ldflags '$(CROSS_LDFLAGS)' -o $@ ./cmd/edgegw

nfpm: ## install nfpm v2.45.2 into GOBIN when missing
	@$(GO) version -m $(NFPM) 2>/dev/null | grep -q 'mod.*github.com/goreleaser/nfpm/v2.*$(NFPM_VERSION)' || \
		$(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

debs: ## dist/edgegw_<version>_{amd64,arm64,armhf}.deb
	$(MAKE) cross
	for a in $(CROSS_ARCHES); do $(MAKE) deb ARCH=$$a || exit 1; done

# The conffile and the examples are copied from configs/ so there is one source; the changelog's
# top entry carries this build's version, commit and date. The command man pages and the shell
# completion scripts come from a binary this machine can run, so they never drift from --help;
# edgegw.yaml(5) is maintained by hand in packaging/edgegw.yaml.5 (a test holds it to the schema).
deb: bin/$(ARCH)/edgegw bin/$(HOST_ARCH)/edgegw nfpm ## dist/edgegw_<version>_<arch>.deb (ARCH=amd64|arm64|armhf)
	rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE)/man $(DEB_STAGE)/etc $(DEB_STAGE)/completion $(DEB_STAGE)/examples/policies
	cp bin/$(ARCH)/edgegw $(DEB_STAGE)/edgegw
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) bin/$(HOST_ARCH)/edgegw man --dir $(DEB_STAGE)/man
	cp packaging/edgegw.yaml.5 $(DEB_STAGE)/man/
	gzip -9n $(DEB_STAGE)/man/*.1 $(DEB_STAGE)/man/*.5
	bin/$(HOST_ARCH)/edgegw completion bash > $(DEB_STAGE)/completion/edgegw.bash
	bin/$(HOST_ARCH)/edgegw completion zsh > $(DEB_STAGE)/completion/_edgegw
	bin/$(HOST_ARCH)/edgegw completion fish > $(DEB_STAGE)/completion/edgegw.fish
	sed -e 's/@VERSION@/$(DEB_VERSION)/' -e "s/@COMMIT@/$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)/" \
		-e "s/@DATE@/$$(date -u -R -d @$(SOURCE_DATE_EPOCH))/" packaging/changelog | gzip -9n > $(DEB_STAGE)/changelog.Debian.gz
	cp $(DEB_CONFFILE) $(DEB_STAGE)/etc/
	cp packaging/devices.yaml $(DEB_STAGE)/devices.yaml
	cp $(DEB_EXAMPLES) $(DEB_STAGE)/examples/
	cp $(DEB_EXAMPLE_POLICIES) $(DEB_STAGE)/examples/policies/
	rm -f dist/edgegw_*_$(ARCH).deb
	EDGEGW_STAGE=$(DEB_STAGE) EDGEGW_ARCH=$(ARCH) EDGEGW_VERSION='$(DEB_VERSION)' EDGEGW_LIBC_DEP='$(libc_dep_$(ARCH))' \
		$(NFPM) package -f packaging/nfpm.yaml -p deb -t dist/edgegw_$(DEB_VERSION)_$(ARCH).deb

test-packaging: ## packaging tests: make debs, dpkg-deb, lintian, qemu, dpkg -i/upgrade/purge (root)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run '^(TestPackaging|TestConfigManPage)$$' -v ./cmd/edgegw
