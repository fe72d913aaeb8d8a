imports = ["common.hcl"]
policy_type "rps" {
  parameter "limit" { type = number }
  parameter "over" {
    default = "30s"
    format  = "durration"
  }
  condition "high" { when = min(window("rps", param.over)) > param.limit }
}
