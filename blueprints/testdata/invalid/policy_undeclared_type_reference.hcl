policy_type "rps_burst" {
  condition "burst" { when = mean(window("rps", "30s")) > 100 }
}
policy "p" {
  type = policy_type.rps_bursts
}
