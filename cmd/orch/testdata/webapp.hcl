# The primary cluster and a Deployment of the test's namespace (input.app,
# "web" by default): what the serve tests' blueprints (restart, missing,
# replay, failover) share.
input "kubeconfig" {}
input "namespace" {}
input "app" { default = "web" }

node "primary" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = "primary" }
}

node "web" {
  type         = "kubernetes.app"
  contained_in = node.primary
  properties   = { namespace = input.namespace, app = input.app }
}
