policy_type "threshold" {
  condition "high" { when = mean(window("cpu", "30s")) }
}
