imports = ["common.hcl"]
policy_type "latency" {
  parameter "slo" { type = number }
  parameter "cooldown_time" { default = "20s" }
  condition "slow" { when = percentile(window("latency", "60s"), 95) > param.slo }
}
policy "slo" {
  type       = policy_type.latency
  targets    = [node.web]
  properties = { slo = 250, cooldown_time = "20 seconds" }
  trigger "slow" { workflow = workflow.kube_scale }
}
