# A policy type written in the blueprint, no Go: scale the bookings app up
# when the 95th percentile of its latency over the last window breaks the
# SLO, and down when it has been far below it. orch serve evaluates it as
# metrics arrive, like the built-in types.
#
#   orch deploy examples/custom-policy/blueprint.hcl -d slo -i namespace=default
#   orch serve &
#   orch metrics publish -d slo --node bookings --name latency --value 0.8 --rate 5 --for 15s
#   orch policies explain bookings_latency -d slo

input "kubeconfig" { default = "" }
input "namespace" { default = "default" }
input "slo_seconds" {
  type    = number
  default = 0.5
}

node "cluster" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = "primary" }
}

node "bookings" {
  type         = "kubernetes.app"
  contained_in = node.cluster
  properties   = { namespace = input.namespace, app = "bookings" }
}

workflow "scale" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.cluster }
  parameter "name" { default = node.bookings.properties.app }
  parameter "namespace" { default = node.bookings.properties.namespace }
  parameter "amount" { default = "+1" }
  parameter "max" { default = 6 }
}

policy_type "latency_slo" {
  description = "Scale on the p95 of a latency metric against an SLO."
  parameter "metric" { default = "latency" }
  parameter "slo" { type = number }
  parameter "window" { default = "10s" }
  parameter "cooldown_time" { default = "20s" }

  condition "breach" {
    description = "p95 above the SLO"
    direction   = "up"
    when        = percentile(window(param.metric, param.window), 95) > param.slo
  }
  condition "calm" {
    description = "every sample well under half the SLO"
    direction   = "down"
    when        = max(window(param.metric, param.window)) < param.slo / 2
  }
}

policy "bookings_latency" {
  type          = policy_type.latency_slo
  targets       = [node.bookings]
  properties    = { slo = input.slo_seconds, window = "5s" }
  initial_delay = "2s"          # default: one window (5s)
  min_hosts     = 1             # hosts that must report for a window to count
  # on_missing_data = "hold" (the default): a silent source scales nothing.

  trigger "breach" {
    workflow   = workflow.scale
    parameters = { amount = "+1" }
  }
  trigger "calm" {
    workflow   = workflow.scale
    parameters = { amount = "-1" }
  }
}
