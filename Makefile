# Convenience targets; CI runs .ci/run.
VERSION ?= dev
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/rawkode/rawkode-cloud/internal/version.Version=$(VERSION) \
           -X github.com/rawkode/rawkode-cloud/internal/version.Commit=$(COMMIT)

.PHONY: build test lint sandbox update-golden

build:
	go build -ldflags "$(LDFLAGS)" -o bin/rawkode-cloud ./cmd/rawkode-cloud

test:
	go test ./...

lint:
	@test -z "$$(gofmt -l cmd internal)" || (gofmt -l cmd internal; exit 1)
	go vet ./...

sandbox:
	go run ./cmd/rawkode-cloud provision --sandbox

# Rewrite golden files and the README's configuration reference.
update-golden:
	go test ./internal/pivot ./internal/machineconfig ./internal/config -update
