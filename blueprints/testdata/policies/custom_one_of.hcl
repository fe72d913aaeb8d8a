imports = ["common.hcl"]
policy_type "level" {
  parameter "limit" { type = number }
  parameter "mode" {
    default = "mean"
    one_of  = ["mean", "max"]
  }
  condition "high" { when = (param.mode == "mean" ? mean(window("cpu", "30s")) : max(window("cpu", "30s"))) > param.limit }
}
policy "cpu" {
  type       = policy_type.level
  targets    = [node.web]
  properties = { limit = 80, mode = "maxx" }
  trigger "high" { workflow = workflow.kube_scale }
}
