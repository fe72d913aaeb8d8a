node "a" {
  contained_in = node.a
}
