node "vm1" {}
node "vm2" {}
node "app" {
  contained_in = node.vm1
  relationship {
    type   = "orch.ContainedIn"
    target = node.vm2
  }
}
