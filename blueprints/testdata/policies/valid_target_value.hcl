imports = ["common.hcl"]
workflow "proportional" {
  uses = "kubernetes.scale"
  parameter "amount" {}
}
policy "web_load" {
  type       = "orch.target_value"
  targets    = [node.web]
  properties = { metric = "load", target = 100, scale_down_stabilization = "2m" }
  trigger "scale_up" {
    workflow   = workflow.proportional
    parameters = { amount = "*${values.ratio}" }
  }
  trigger "scale_down" {
    workflow   = workflow.proportional
    parameters = { amount = "*${values.ratio}" }
  }
}
