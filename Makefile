# Tandem's two commands are `make demo` and `make test`; both install what
# they need first. Everything downloaded or built lands in build/ (ignored).

GO       ?= go
BUILD    := build
TANDEM   := $(BUILD)/tandem
GOFLAGS_STATIC := CGO_ENABLED=0

.PHONY: all build deps testdata testdata-arm64 test fuzz bench demo vet clean

all: build

build:
	$(GOFLAGS_STATIC) $(GO) build -buildvcs=auto -o $(TANDEM) ./cmd/tandem

deps:
	@scripts/deps.sh

testdata: deps
	@scripts/testdata.sh x86 x86-generic arm64 arm64-cloud u-boot-qemu-trixie armhf x86-6.12 arm64-6.12 armhf-6.12 arm64-rt rt-tests-arm64 x86-rt rt-tests-amd64 qemu-arm64 swtpm-arm64 vncsnapshot-arm64 perf-arm64 && scripts/testdata-boards.sh

# The demo boots Debian's arm64 kernel as host and guests: it needs
# neither the x86 and armhf kernels nor the boards' device trees.
testdata-arm64: deps
	@scripts/testdata.sh arm64 arm64-cloud u-boot-qemu-trixie

# staticcheck is a tool dependency (go.mod), so its version is pinned.
# It is built for this machine and then run with GOARCH set: `GOARCH=arm64
# go tool staticcheck` would build it for arm64 instead.
STATICCHECK := $(BUILD)/staticcheck

# build/ holds a go.mod of its own, so that ./... leaves it (and the test
# data being unpacked in it beside the vet step) alone.
$(BUILD)/go.mod:
	@mkdir -p $(BUILD) && echo 'module build // not Tandem: go commands on ./... skip this tree' >$@

vet: $(BUILD)/go.mod
	$(GO) vet ./...
	$(GO) build -o $(STATICCHECK) honnef.co/go/tools/cmd/staticcheck
	$(STATICCHECK) ./...
	GOARCH=arm64 $(GO) vet ./...
	GOARCH=arm64 $(STATICCHECK) ./...
	GOARCH=arm64 $(GO) build ./...
	GOARCH=arm $(GO) vet ./...
	GOARCH=arm $(STATICCHECK) ./...
	GOARCH=arm $(GO) build ./...

# The end-to-end tests boot emulated hosts under QEMU: give them time.
# Every test binary of the first two passes appends to $(REPORT)
# (internal/testenv.Record): where each test that needs /dev/kvm ran, and
# every emulated host's boot; the summary is printed at the end, pass or
# fail. The race and 32-bit passes boot no host and are not reported.
REPORT   := $(BUILD)/test-report.jsonl
# Packages with tests that need /dev/kvm (internal/kvmtest.Here).
KVM_FILES = $(shell grep -rl --include=*_test.go 'kvmtest[.]Here' hv vmm cmd arch system internal | grep -v '^internal/kvmtest/')
KVM_PKGS  = $(sort $(dir $(KVM_FILES)))
# The tests themselves (a top-level TestX whose body calls kvmtest.Here or
# HereWith): the emulated-host pass runs only them.
KVM_TESTS = $(shell awk '/^func Test/{split($$2, a, "[()]"); f=a[1]} /^\t+if !kvmtest[.]Here/{print f}' $(KVM_FILES) | sort -u | paste -sd'|')
# Packages whose tests boot no emulated host: they run again under -race.
RACE_PKGS = $(shell $(GO) list ./... | grep -v -e /internal/e2e -e /internal/qemuhost -e /internal/boardboot -e /internal/cmd/demo)
# Device models, virtqueues, buses, guest memory and loaders: they run
# again as 32-bit ARM (an ARMv7 host), where an int is 32 bits wide.
ARM_PKGS  = ./hv/bus/... ./hv/mem/... ./hv/devices/... ./arch/...

# Every fuzz target of the device models, each for FUZZTIME, FUZZJOBS of
# them at once; it prints how many inputs each ran. `make test` runs them
# for 3 s each (about a minute and a half in all, builds included).
FUZZTIME ?= 10m
FUZZJOBS ?= 1

fuzz:
	@FUZZTIME=$(FUZZTIME) FUZZJOBS=$(FUZZJOBS) GO=$(GO) scripts/fuzz.sh

# The end-to-end package boots about a dozen emulated hosts and boards one
# after another (about 11 minutes; each panicked or frozen host is booted
# again, a few minutes each): its bound leaves room for those retries.
# The test data's downloads and unpacking and the vet step's compiles
# run side by side, a line of either at a time.
test: deps $(BUILD)/go.mod
	@$(MAKE) --no-print-directory -j2 -Oline testdata vet
	@mkdir -p $(BUILD) && rm -f $(REPORT)
	@export TANDEM_TEST_REPORT=$(abspath $(REPORT)); status=0; \
	$(GO) test -p 1 -count=1 -timeout 70m ./... || status=1; \
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then \
		echo "test: this machine has /dev/kvm; the tests that need it run again in an emulated host ($(KVM_PKGS))"; \
		TANDEM_KVM_TESTS=host $(GO) test -count=1 -run '^($(KVM_TESTS))$$' $(addprefix ./,$(KVM_PKGS)) || status=1; \
	fi; \
	unset TANDEM_TEST_REPORT; \
	echo "test: unit tests again under the race detector"; \
	$(GO) test -race -short -count=1 $(RACE_PKGS) || status=1; \
	echo "test: device, memory and loader tests again as 32-bit ARM (qemu-arm-static)"; \
	GOARCH=arm $(GO) test -count=1 -exec qemu-arm-static $(ARM_PKGS) || status=1; \
	echo "test: every device fuzz target for 3 s (make fuzz runs them for FUZZTIME, 10m)"; \
	FUZZTIME=3s GO=$(GO) scripts/fuzz.sh || status=1; \
	$(GO) run ./internal/cmd/testreport $(REPORT); \
	exit $$status

# The bench's arm64 peer is Debian's arm64 QEMU, unpacked from its packages
# (scripts/testdata.sh qemu-arm64) and run inside the emulated arm64 board.
bench: deps testdata build
	@scripts/testdata.sh qemu-arm64 arm64-rt rt-tests-arm64 stress-ng-arm64
	$(GO) run ./internal/cmd/bench

# make demo RT=1 boots the control guest on Debian's PREEMPT_RT kernel.
demo: deps testdata-arm64 build
	$(if $(RT),@scripts/testdata.sh arm64-rt)
	$(GO) run ./internal/cmd/demo $(if $(RT),-rt)

clean:
	rm -rf $(BUILD)
