node "web" {}

source "rps" {
  kind   = "prometheus"
  url    = "http://127.0.0.1:9090"
  query  = "http_requests_total[5m]"
  metric = "rps"
  node   = node.web
}
