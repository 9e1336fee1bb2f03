GO ?= go

.PHONY: build test test-race e2e lint verify fuzz bench proto run ci

build:
	$(GO) build -o bin/magpie ./cmd/magpie

run:
	$(GO) run ./cmd/magpie serve

test:
	$(GO) test ./...

test-race:
	$(GO) test -race ./...

e2e:
	$(GO) test -tags e2e -count=1 ./e2e/...

lint:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "not gofmt-clean:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzReadFrame -fuzztime=30s ./proto/wire/
	$(GO) test -run=^$$ -fuzz=FuzzTCPFrames -fuzztime=30s ./internal/gateway/
	$(GO) test -run=^$$ -fuzz=FuzzJSONEnvelope -fuzztime=30s ./internal/gateway/
	$(GO) test -run=^$$ -fuzz=FuzzVerify -fuzztime=30s ./internal/push/
	$(GO) test -run=^$$ -fuzz=FuzzTokenVerify -fuzztime=30s ./internal/logic/
	$(GO) test -run=^$$ -fuzz=FuzzUpload -fuzztime=30s ./internal/api/
	$(GO) test -run=^$$ -fuzz=FuzzJSONBodies -fuzztime=30s ./internal/api/
	$(GO) test -run=^$$ -fuzz=FuzzSanitizeName -fuzztime=30s ./internal/files/

bench:
	$(GO) test -run=^$$ -bench=. -benchmem ./internal/store/sqlstore/ ./internal/gateway/ ./proto/wire/

# generated code, go.mod tidiness, gofmt, vet and staticcheck (scripts/verify.sh)
verify:
	scripts/verify.sh

# Needs protoc (Debian: protobuf-compiler); protoc-gen-go is pinned by the
# tool directive in go.mod.
proto:
	protoc --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" --go_out=. --go_opt=module=github.com/magpie-im/magpie -I proto proto/*.proto
	protoc --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" --go_out=. --go_opt=module=github.com/magpie-im/magpie -I internal/cluster/clusterpb internal/cluster/clusterpb/*.proto

ci:
	.ci/run
