#!/usr/bin/env bash
# `make test`: bring the test environment up (unless it already runs), run
# every test, and take the environment down again if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
testenv() { (cd hack/testenv && go run ./cmd/testenv "$@"); }
# The environment tool's own tests first: it decides what runs.
(cd hack/testenv && go test -count=1 ./cmd/testenv)
started=0
if ! testenv status >/dev/null 2>&1; then
  testenv up
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then testenv down; fi; }
trap cleanup EXIT
go test -count=1 -timeout 20m "$@" ./...
