input "replicas" {
  type    = number
  default = "many"
}
