imports = ["common.hcl"]
input "cooldown" { default = "1 min" }
policy "up" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { scale_threshold = 70, cooldown_time = input.cooldown }
  trigger "scale" { workflow = workflow.kube_scale }
}
