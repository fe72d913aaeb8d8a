input "replicas" {
  type = integer
}
