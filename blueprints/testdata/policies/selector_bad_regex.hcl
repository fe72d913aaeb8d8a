imports = ["common.hcl"]
policy "up" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { scale_threshold = 70, service_selector = "web.(cpu" }
  trigger "scale" { workflow = workflow.kube_scale }
}
