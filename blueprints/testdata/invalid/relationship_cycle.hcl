node "a" {
  depends_on = [node.c]
}
node "b" {
  depends_on = [node.a]
}
node "c" {
  connected_to = [node.b]
}
