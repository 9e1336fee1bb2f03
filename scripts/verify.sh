#!/usr/bin/env bash
# verify.sh: fail when anything generated or tidied is out of date, or the
# linters complain. Run by `make verify` and .ci/run. Needs protoc
# (Debian: protobuf-compiler); protoc-gen-go and staticcheck are pinned by
# the tool directives in go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

echo "verify: generated protobuf code matches proto/*.proto and internal/cluster/clusterpb/*.proto"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
protoc --plugin=protoc-gen-go="$(go tool -n protoc-gen-go)" --go_out="$tmp" \
	--go_opt=module=github.com/magpie-im/magpie -I proto proto/*.proto
protoc --plugin=protoc-gen-go="$(go tool -n protoc-gen-go)" --go_out="$tmp" \
	--go_opt=module=github.com/magpie-im/magpie -I internal/cluster/clusterpb internal/cluster/clusterpb/*.proto
for pkg in proto/magpiepb internal/cluster/clusterpb; do
	# clusterpb holds its .proto beside the generated code: compare the .pb.go files only.
	if ! diff -r -x '*.proto' "$tmp/$pkg" "$pkg"; then
		echo "verify: $pkg is stale: run make proto and commit"; fail=1
	fi
done

echo "verify: code table outputs match proto/wire/codes.json"
go run ./proto/wire/gencodes -check || fail=1

echo "verify: the flag table in docs/operations.md matches magpie serve --help"
sed -n '/<!-- flags:begin/,/<!-- flags:end/p' docs/operations.md | sed '1d;$d' > "$tmp/doc-flags.md"
scripts/flags-table.sh > "$tmp/flags.md"
if ! diff "$tmp/doc-flags.md" "$tmp/flags.md"; then
	echo "verify: docs/operations.md's flag table is stale: paste scripts/flags-table.sh's output"; fail=1
fi

echo "verify: go.mod and go.sum are tidy"
cp go.mod "$tmp/go.mod.orig"; cp go.sum "$tmp/go.sum.orig"
go mod tidy
if ! diff "$tmp/go.mod.orig" go.mod || ! diff "$tmp/go.sum.orig" go.sum; then
	echo "verify: go.mod/go.sum not tidy: run go mod tidy and commit"; fail=1
	cp "$tmp/go.mod.orig" go.mod; cp "$tmp/go.sum.orig" go.sum
fi

echo "verify: gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [ -n "$unformatted" ]; then echo "verify: not gofmt-clean:"; echo "$unformatted"; fail=1; fi

echo "verify: go vet"
go vet ./... || fail=1

echo "verify: staticcheck"
go tool staticcheck ./... || fail=1

exit "$fail"
