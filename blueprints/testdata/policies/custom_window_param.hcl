imports = ["common.hcl"]
policy_type "rps" {
  parameter "limit" { type = number }
  parameter "over" { default = "30s" }
  condition "high" { when = min(window("rps", param.over)) > param.limit }
}
policy "busy" {
  type       = policy_type.rps
  targets    = [node.web]
  properties = { limit = 100, over = "half a minute" }
  trigger "high" { workflow = workflow.kube_scale }
}
