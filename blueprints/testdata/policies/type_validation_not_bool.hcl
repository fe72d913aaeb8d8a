imports = ["common.hcl"]
policy_type "band" {
  parameter "low" { type = number }
  validation {
    condition     = param.low
    error_message = "low must be set."
  }
  condition "below" { when = mean(window("cpu", "30s")) < param.low }
}
