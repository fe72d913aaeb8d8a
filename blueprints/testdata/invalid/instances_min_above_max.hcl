node "web" {
  instances {
    default = 3
    min     = 5
    max     = 4
  }
}
