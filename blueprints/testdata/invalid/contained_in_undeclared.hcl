node "web" {
  contained_in = node.host
}
