imports = ["common.hcl"]
policy_type "band" {
  parameter "low" {
    type    = number
    minimum = 10
    maximum = 1
  }
  condition "below" { when = mean(window("cpu", "30s")) < param.low }
}
