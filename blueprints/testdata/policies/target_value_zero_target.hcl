imports = ["common.hcl"]
policy "web_load" {
  type       = "orch.target_value"
  targets    = [node.web]
  properties = { metric = "load", target = 0, tolerance = 1.5, scale_down_stabilization = "5 min" }
  trigger "scale_up" { workflow = workflow.kube_scale }
}
