policy_type "rps_burst" {
  condition "burst" { when = mean(window("rps", "30s")) > 100 }
}
workflow "w" { uses = "script.workflow" }
policy "p" {
  type = policy_type.rps_burst
  trigger "brust" { workflow = workflow.w }
}
