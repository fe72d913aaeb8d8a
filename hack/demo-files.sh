#!/usr/bin/env bash
# The demo: deploy the files example with a throw-away state file, look at
# it the way a user would, and undeploy it. Every command is printed first.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ORCH_STATE="$work/state.db"
orch=bin/orch
run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

run $orch validate examples/files/blueprint.hcl
run $orch deploy examples/files/blueprint.hcl -d demo -i dir="$work/files" -i greeting=hello
run ls -l "$work/files"
run cat "$work/files/app.conf"
run $orch deployments show demo
run $orch workflow run uninstall -d demo --dry-run
run $orch executions list -d demo
run $orch undeploy demo
run ls "$work"
printf '\nDone: install created the files in dependency order, undeploy removed them in reverse.\n'
