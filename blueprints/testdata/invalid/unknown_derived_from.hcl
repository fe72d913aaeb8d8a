node_type "base" {}
node_type "web" {
  derived_from = "bsae"
}
