#!/bin/sh
# Builds the Go reference of the dump comparison (BENCHMARKS.md, "Against Go's handler"):
# faas-provider's `logs` and `httputil` packages, copied from a checkout of
# github.com/openfaas/faas-provider (the first argument), with main.go beside them.
# Needs Go 1.19 or later (Debian's golang-go). Writes target/go-logs-bench.
set -eu
provider=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/../.." && pwd)/target/go-logs-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/logs" "$work/httputil" "$work/cmd/bench"
printf 'module github.com/openfaas/faas-provider\n\ngo 1.19\n' > "$work/go.mod"
cp "$provider/logs/logs.go" "$provider/logs/handler.go" "$work/logs/"
for f in "$provider"/httputil/*.go; do
    case "$f" in *_test.go) ;; *) cp "$f" "$work/httputil/" ;; esac
done
cp "$here/main.go" "$work/cmd/bench/"
(cd "$work" && GOFLAGS=-mod=mod GOPROXY=off go build -o "$out" ./cmd/bench)
echo "$out"
