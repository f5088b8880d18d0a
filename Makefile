# Bulwark. `make run` builds and serves on the embedded defaults;
# `make test` installs what the tests need and runs them all.
GO      ?= go
BIN     := bin/bulwark
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: run build test bench fuzz clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/bulwark

run: build
	./$(BIN) serve

test:
	scripts/test.sh

bench:
	scripts/bench.sh $(ARGS)

fuzz:
	scripts/fuzz.sh

clean:
	rm -rf bin
