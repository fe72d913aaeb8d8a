policy_type "t" {
  condition "high" { when = mean(window("cpu", "30s")) > 80 }
}
workflow "w" { uses = "script.workflow" }
policy "p" {
  type = policy_type.t
  trigger "high" { workflow = workflow.w }
  trigger "high" { workflow = workflow.w }
}
