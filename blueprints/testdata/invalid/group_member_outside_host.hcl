node "vm" {
  instances { default = 2 }
}
node "app" { contained_in = node.vm }

group "apps" {
  members = [node.app]
}
