imports = ["common.hcl"]
policy "calm" {
  type       = "orch.ewma_threshold"
  targets    = [node.web]
  properties = { metric = "cpu", window = "0s", scale_up_above = 80, scale_down_below = 20 }
  trigger "scale_up" { workflow = workflow.kube_scale }
}
