node_type "a" {
  derived_from = "b"
}
node_type "b" {
  derived_from = "a"
}
