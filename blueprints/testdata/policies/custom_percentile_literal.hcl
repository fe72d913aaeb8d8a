imports = ["common.hcl"]
policy_type "latency" {
  parameter "slo" { type = number }
  condition "slow" { when = percentile(window("latency", "60s"), 150) > param.slo }
}
