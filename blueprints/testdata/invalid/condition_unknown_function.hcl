policy_type "threshold" {
  condition "high" { when = median(window("cpu", "30s")) > 1 }
}
