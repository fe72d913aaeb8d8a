node "db" {}
node "app" {
  relationship {
    target          = node.db
    connection_type = "all_to_many"
  }
}
