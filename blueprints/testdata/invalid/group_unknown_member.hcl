node "vm" {}
node "app" { contained_in = node.vm }

group "stack" {
  members = [node.vm, node.ap]
  instances { default = 1 }
}
