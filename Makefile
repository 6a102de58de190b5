# Tandem's two commands are `make demo` and `make test`; both install what
# they need first. Everything downloaded or built lands in build/ (ignored).

GO       ?= go
BUILD    := build
TANDEM   := $(BUILD)/tandem
GOFLAGS_STATIC := CGO_ENABLED=0

.PHONY: all build deps testdata test bench demo vet clean

all: build

build:
	$(GOFLAGS_STATIC) $(GO) build -o $(TANDEM) ./cmd/tandem

deps:
	@scripts/deps.sh

testdata: deps
	@scripts/testdata.sh x86 arm64 armhf && scripts/testdata-boards.sh

vet:
	$(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./...
	GOARCH=arm64 $(GO) build ./...
	GOARCH=arm $(GO) vet ./...
	GOARCH=arm $(GO) build ./...

# The end-to-end tests boot emulated hosts under QEMU: give them time.
test: deps testdata vet
	$(GO) test -p 1 -count=1 -timeout 45m ./...

bench: deps testdata build
	$(GO) run ./internal/cmd/bench

demo: deps testdata build
	$(GO) run ./internal/cmd/demo

clean:
	rm -rf $(BUILD)
