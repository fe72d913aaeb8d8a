imports = ["common.hcl"]
policy_type "band" {
  parameter "low" { type = number }
  parameter "high" { type = number }
  validation {
    condition     = param.low < param.high
    error_message = "low must be below high."
  }
  condition "above" { when = mean(window("cpu", "30s")) > param.high }
  condition "below" { when = mean(window("cpu", "30s")) < param.low }
}
policy "cpu" {
  type       = policy_type.band
  targets    = [node.web]
  properties = { high = 20, low = 80 }
  trigger "above" { workflow = workflow.kube_scale }
}
