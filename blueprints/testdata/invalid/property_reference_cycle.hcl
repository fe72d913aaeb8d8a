node "a" {
  properties = { x = node.b.properties.y }
}
node "b" {
  properties = { y = node.a.properties.x }
}
