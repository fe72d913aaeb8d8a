imports = ["common.hcl"]
policy_type "rps" {
  parameter "limit" { type = number }
  parameter "over" {
    default = "30 s"
    format  = "duration"
  }
  condition "high" { when = min(window("rps", param.over)) > param.limit }
}
