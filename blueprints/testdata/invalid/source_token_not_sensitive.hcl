input "token" {}

node "web" {}

source "rps" {
  kind         = "prometheus"
  url          = "https://prometheus.example:9090"
  query        = "up"
  metric       = "rps"
  node         = node.web
  bearer_token = input.token
}
