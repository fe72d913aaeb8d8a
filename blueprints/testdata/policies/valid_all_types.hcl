# valid: every built-in policy type with every parameter set, and a
# user-defined type with checks; orch validate accepts it.
imports = ["common.hcl"]
node "cluster" {
  type = "kubernetes.cluster"
}
workflow "rr" { uses = "kubernetes.route_reflectors" }
policy "up" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { service_selector = "\\.cpu\\.", moving_window_size = "10s", scale_threshold = 70, scale_limit = 5, scale_direction = "<", cooldown_time = "0s", cooldown_scope = "deployment" }
  trigger "scale" { workflow = workflow.kube_scale }
}
policy "bookings_rps" {
  type       = "orch.rps_burst"
  targets    = [node.web]
  properties = { metric = "rps", burst_value = 40, reconcile_value = 20, throttle_delay = "2m", sample_window = "5s" }
  trigger "burst" { workflow = workflow.kube_scale }
}
policy "calm" {
  type       = "orch.ewma_threshold"
  targets    = [node.web]
  properties = { metric = "cpu", window = "1m30s", alpha = 1, scale_up_above = 80, scale_down_below = 20 }
  trigger "scale_up" { workflow = workflow.kube_scale }
}
policy "nodes" {
  type       = "orch.node_changes"
  targets    = [node.cluster]
  properties = { settle = "500ms", resync = "1h", node_selector = "zone in (a,b),!spot" }
  trigger "changed" { workflow = workflow.rr }
}
policy_type "band" {
  parameter "low" { type = number }
  parameter "high" {
    type    = number
    maximum = 100
  }
  parameter "over" { default = "30s" }
  parameter "quantile" {
    type    = number
    default = 95
  }
  validation {
    condition     = param.low < param.high
    error_message = "low must be below high."
  }
  condition "above" { when = percentile(window("cpu", param.over), param.quantile) > param.high }
  condition "below" { when = mean(window("cpu", param.over)) < param.low }
}
policy "cpu" {
  type       = policy_type.band
  targets    = [node.web]
  properties = { low = 20, high = 80, over = "1m", quantile = 99.9 }
  trigger "above" { workflow = workflow.kube_scale }
}
