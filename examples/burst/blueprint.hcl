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
# The policy below fires them from live rps metrics once the policy runner
# evaluates policies; today it is parsed and type-checked.

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

# The seed's rps-burst rule as a user-defined policy type: burst when rps
# stays above burst_value for the whole throttle delay, reconcile when it
# stays below reconcile_value for the whole delay.
policy_type "rps_burst" {
  parameter "burst_value" { type = number }
  parameter "reconcile_value" { type = number }
  parameter "throttle_delay" { default = "120s" }
  condition "burst" {
    when = min(window("rps", param.throttle_delay)) > param.burst_value
  }
  condition "reconcile" {
    when = max(window("rps", param.throttle_delay)) < param.reconcile_value
  }
}

policy "bookings_rps" {
  type       = policy_type.rps_burst
  targets    = [node.bookings]
  properties = { burst_value = 100, reconcile_value = 60 }
  trigger "burst" { workflow = workflow.burst }
  trigger "reconcile" { workflow = workflow.reconcile }
}
