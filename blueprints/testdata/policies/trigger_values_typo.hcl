imports = ["common.hcl"]
policy "web_load" {
  type       = "orch.target_value"
  targets    = [node.web]
  properties = { metric = "load", target = 100 }
  trigger "scale_up" {
    workflow   = workflow.kube_scale
    parameters = { amount = "*${values.ration}" }
  }
  trigger "scale_down" {
    workflow   = workflow.kube_scale
    parameters = { amount = "*${event.metrik}" }
  }
}
