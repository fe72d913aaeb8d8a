node "a" {}
node "web" {
  depends_on = "a"
}
