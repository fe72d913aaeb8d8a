node "web" {
  instances {
    min     = 1
    max     = 3
    default = 4
  }
}
