imports = ["common.hcl"]
policy "calm" {
  type       = "orch.ewma_threshold"
  targets    = [node.web]
  properties = { metric = "cpu", scale_up_above = 20, scale_down_below = 80 }
  trigger "scale_up" { workflow = workflow.kube_scale }
}
