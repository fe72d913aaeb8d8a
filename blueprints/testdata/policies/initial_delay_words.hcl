imports = ["common.hcl"]
policy "up" {
  type          = "orch.scale_threshold"
  targets       = [node.web]
  initial_delay = "a minute"
  properties    = { scale_threshold = 70 }
  trigger "scale" { workflow = workflow.kube_scale }
}
