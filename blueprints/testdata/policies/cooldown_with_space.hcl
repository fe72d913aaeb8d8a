imports = ["common.hcl"]
policy "up" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { scale_threshold = 70, cooldown_time = "30 s" }
  trigger "scale" { workflow = workflow.kube_scale }
}
