node_type "web_server" {}
node "web" {
  type = "web_servr"
}
