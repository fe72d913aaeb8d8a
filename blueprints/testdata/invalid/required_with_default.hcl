node_type "db" {
  property "port" {
    type     = number
    default  = 5432
    required = true
  }
}
