node "web" {
  properties = { name = self.name }
}
