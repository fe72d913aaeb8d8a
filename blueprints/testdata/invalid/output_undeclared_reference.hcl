node "web" {}
output "url" {
  value = node.wbe.properties.url
}
