node "web" {}

source "rps" {
  kind   = "prometheus"
  url    = "http://127.0.0.1:9090"
  query  = "sum by (instance) (rate(http_requests_total[1m])"
  metric = "rps"
  node   = node.web
}
