policy_type "threshold" {
  condition "high" { when = mean(window("cpu", "thirty seconds")) > 1 }
}
