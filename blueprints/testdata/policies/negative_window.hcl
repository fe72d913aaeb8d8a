imports = ["common.hcl"]
policy "up" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { scale_threshold = 70, moving_window_size = "-10s" }
  trigger "scale" { workflow = workflow.kube_scale }
}
