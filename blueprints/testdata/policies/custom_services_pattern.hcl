imports = ["common.hcl"]
policy_type "services_cpu" {
  parameter "pattern" { default = ".*" }
  parameter "limit" { type = number }
  condition "high" { when = mean(services(param.pattern, "30s")) > param.limit }
}
policy "cpu" {
  type       = policy_type.services_cpu
  targets    = [node.web]
  properties = { pattern = "[cpu", limit = 80 }
  trigger "high" { workflow = workflow.kube_scale }
}
