imports = ["common.hcl"]
policy "up" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { scale_threshold = 70, scale_direction = "up" }
  trigger "scale" { workflow = workflow.kube_scale }
}
