policy_type "t" {
  condition "high" { when = mean(window("cpu", "30s")) > 80 }
}
workflow "scale" {
  uses = "script.workflow"
  parameter "amount" { default = "+1" }
}
policy "p" {
  type = policy_type.t
  trigger "high" {
    workflow   = workflow.scale
    parameters = { amout = "+2" }
  }
}
