imports = ["common.hcl"]
policy_type "latency" {
  parameter "slo" { type = number }
  parameter "quantile" {
    type    = number
    default = 95
  }
  condition "slow" { when = percentile(window("latency", "60s"), param.quantile) > param.slo }
}
policy "slo" {
  type       = policy_type.latency
  targets    = [node.web]
  properties = { slo = 250, quantile = 99.9 * 10 }
  trigger "slow" { workflow = workflow.kube_scale }
}
