# Story 2: cloud-burst an app from the primary cluster into a peer cluster,
# then bring it back. burst copies the Deployments labelled app=<app> (with
# their Services, ConfigMaps and Secrets) into the peer, waits until every
# replica runs, and splits the traffic with an Istio VirtualService;
# reconcile removes the split and only orch's copies.
#
#   source ~/.local/state/orch/testenv/env
#   orch deploy examples/burst/blueprint.hcl -d bookings
#   orch workflow run burst -d bookings -p weight=25
#   orch workflow run reconcile -d bookings
#
# With `orch serve` running, the policy below fires them from live rps
# metrics (orch metrics publish -d bookings --node bookings --name rps ...).

input "kubeconfig" { default = "" }
input "primary_context" { default = "primary" }
input "peer_context" { default = "peer" }
input "namespace" { default = "smm-demo" }

node "primary" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = input.primary_context }
}

node "peer" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = input.peer_context }
}

node "bookings" {
  type         = "kubernetes.app"
  contained_in = node.primary
  properties   = { namespace = input.namespace, app = "bookings" }
}

workflow "burst" {
  uses        = "kubernetes.burst"
  description = "Replicate bookings into the peer cluster and send it a share of the traffic."
  parameter "app" { default = node.bookings.properties.app }
  parameter "namespace" { default = node.bookings.properties.namespace }
  parameter "from" { default = node.primary }
  parameter "to" { default = node.peer }
  parameter "weight" {
    type        = number
    default     = 25
    description = "Percent of the traffic sent to the replica."
  }
  parameter "replica_suffix" {
    default     = "-repl"
    description = "The replica's mesh host is <service><suffix>, as the seed's bookings-repl."
  }
  parameter "timeout" { default = "60s" }
}

workflow "reconcile" {
  uses = "kubernetes.reconcile"
  parameter "app" { default = node.bookings.properties.app }
  parameter "namespace" { default = node.bookings.properties.namespace }
  parameter "from" { default = node.primary }
  parameter "to" { default = node.peer }
}

# The seed's rule, with its demo values: burst when bookings' rps stays above
# 40 for the whole throttle delay, reconcile when it stays below 20 for the
# whole delay; in between nothing fires, so a noisy stream does not flap.
input "burst_value" {
  type    = number
  default = 40
}
input "reconcile_value" {
  type    = number
  default = 20
}
input "throttle_delay" { default = "30s" }

policy "bookings_rps" {
  type    = "orch.rps_burst"
  targets = [node.bookings]
  properties = {
    metric          = "rps"
    burst_value     = input.burst_value
    reconcile_value = input.reconcile_value
    throttle_delay  = input.throttle_delay
  }
  trigger "burst" { workflow = workflow.burst }
  trigger "reconcile" { workflow = workflow.reconcile }
}
