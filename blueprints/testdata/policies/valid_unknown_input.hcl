# valid: a property from an input without a default is checked when the
# blueprint is deployed with a value, not refused by orch validate.
imports = ["common.hcl"]
input "cooldown" {}
policy "up" {
  type       = "orch.scale_threshold"
  targets    = [node.web]
  properties = { scale_threshold = 70, cooldown_time = input.cooldown }
  trigger "scale" { workflow = workflow.kube_scale }
}
