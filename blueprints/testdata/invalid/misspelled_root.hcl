node "web" {
  properties = { a = inptu.x }
}
