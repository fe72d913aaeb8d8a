node "web" {
  properties = { a = 1
}
