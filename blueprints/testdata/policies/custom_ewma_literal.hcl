imports = ["common.hcl"]
policy_type "smooth" {
  parameter "limit" { type = number }
  condition "high" { when = ewma(window("cpu", "60s"), 0) > param.limit }
}
