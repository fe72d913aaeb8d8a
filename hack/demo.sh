#!/usr/bin/env bash
# The demo, story 2: cloud-burst bookings from the primary cluster into the
# peer when its rps stays high, and bring it back when it drops. It brings
# the test environment up (reusing what runs), prints every command a user
# would type, and leaves everything as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '\033[1m$ %s\033[0m\n' "$*"; "$@"; }

testenv() { (cd hack/testenv && go run ./cmd/testenv "$@"); }
started_env=0
if ! testenv status >/dev/null 2>&1; then
  bold "Starting the test environment (RabbitMQ, two Kubernetes control planes, sshd)"
  testenv up
  started_env=1
fi
# shellcheck disable=SC1090
source "$(testenv status)"
go build -o bin/orch ./cmd/orch
orch=bin/orch
work=$(mktemp -d)
export ORCH_STATE="$work/state.db"
ns=smm-demo
exchange=demo-monitoring-$$
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  $orch undeploy bookings >/dev/null 2>&1 || true
  kubectl --context primary delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl --context peer delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ "$started_env" = 1 ]; then testenv down >/dev/null 2>&1; fi
}
trap cleanup EXIT

bold "1. The bookings app runs in the primary cluster"
kubectl --context peer delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
kubectl --context primary delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
run kubectl --context primary create namespace "$ns"
run kubectl --context primary -n "$ns" create deployment bookings --image=registry.local/bookings:1 --replicas=2
run kubectl --context primary -n "$ns" expose deployment bookings --port=8080
run kubectl --context primary -n "$ns" wait --for=condition=Available deployment/bookings --timeout=60s

bold "2. Deploy the blueprint: burst/reconcile workflows and the rps_burst policy (40/20, held 5s)"
run $orch deploy examples/burst/blueprint.hcl -d bookings -i namespace="$ns" -i throttle_delay=5s

bold "3. orch serve consumes metrics and runs what the policy triggers"
printf '\033[1m$ %s\033[0m\n' "orch serve &"
$orch serve --exchange "$exchange" --queue "orch.demo.$$" --api-addr 127.0.0.1:0 > "$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q "metric intake connected" "$work/serve.log" && break; sleep 0.1; done

bold "4. Load rises: 100 rps for 8 seconds"
run $orch metrics publish --exchange "$exchange" -d bookings --node bookings --name rps --value 100 --rate 5 --for 8s
for _ in $(seq 300); do kubectl --context primary -n "$ns" get virtualservice orch-burst-bookings >/dev/null 2>&1 && break; sleep 0.2; done
grep -E "burst fired|burst triggered|Waiting|running|traffic split" "$work/serve.log" | sed 's/^/    /' || true
run kubectl --context peer -n "$ns" get deployments,pods
run kubectl --context primary -n "$ns" get virtualservice orch-burst-bookings -o jsonpath='{range .spec.http[0].route[*]}{.destination.host}: {.weight}%{"\n"}{end}'
echo "    (while serve runs, the CLI asks it through its API)"
run $orch policies show bookings_rps -d bookings

bold "5. Load drops: 5 rps for 12 seconds"
run $orch metrics publish --exchange "$exchange" -d bookings --node bookings --name rps --value 5 --rate 5 --for 12s
for _ in $(seq 300); do kubectl --context peer get namespace "$ns" >/dev/null 2>&1 || break; sleep 0.2; done
grep -E "reconcile fired|removed|deleted" "$work/serve.log" | sed 's/^/    /' || true
run kubectl --context peer get namespace "$ns" --ignore-not-found
echo "    (nothing: the namespace burst created in the peer is gone)"

bold "6. Look at what ran and why, then stop orch serve"
run $orch executions list -d bookings
run $orch policies explain bookings_rps -d bookings -n 8
run $orch policies show bookings_rps -d bookings --plot
printf '\033[1m$ %s\033[0m\n' "kill -TERM <orch serve>"
kill -TERM "$serve_pid" && wait "$serve_pid" || true
serve_pid=

bold "Done: burst when rps stayed above 40, reconcile when it stayed below 20; the peer is as before."
