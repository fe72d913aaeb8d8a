node "web" {}

source "rps" {
  kind     = "promethus"
  url      = "http://prometheus.example:9090"
  query    = "up"
  metric   = "my.rps"
  node     = node.web
  interval = "5s"
  timeout  = "10s"
}

source "mesh" {
  kind  = "calisti"
  url   = "https://calisti.example/api/graphql"
  node  = node.web
  query = "rps"
}
