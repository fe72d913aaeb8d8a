input "token" { sensitive = true }

node "web" {}

source "rps" {
  kind         = "prometheus"
  url          = "http://prometheus.example:9090"
  query        = "up"
  metric       = "rps"
  node         = node.wbe
  bearer_token = input.token
}

source "rps" {
  kind   = "prometheus"
  url    = "http://127.0.0.1:9090"
  query  = "up"
  metric = "up"
  node   = node.web
}

source "latency" {
  kind   = "prometheus"
  url    = "prometheus:9090"
  query  = "sum(rate(x[1m])) by instance"
  metric = "rps"
  node   = node.web
}
