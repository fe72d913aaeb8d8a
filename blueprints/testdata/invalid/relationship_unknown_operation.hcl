node "db" {}
node "app" {
  relationship {
    target = node.db
    operation "establsh" {
      implementation = "script"
      inputs         = { command = ["true"] }
    }
  }
}
