policy_type "threshold" {
  condition "high" { when = window("cpu", "30s") > 1 }
}
