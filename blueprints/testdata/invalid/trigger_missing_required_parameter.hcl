policy_type "t" {
  condition "high" { when = mean(window("cpu", "30s")) > 80 }
}
workflow "scale" {
  uses = "script.workflow"
  parameter "name" { type = string }
}
policy "p" {
  type = policy_type.t
  trigger "high" { workflow = workflow.scale }
}
