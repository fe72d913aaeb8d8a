# The primary cluster and the web Deployment in the test's namespace: what
# the serve tests' blueprints (restart, missing, replay) share.
input "kubeconfig" {}
input "namespace" {}

node "primary" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = "primary" }
}

node "web" {
  type         = "kubernetes.app"
  contained_in = node.primary
  properties   = { namespace = input.namespace, app = "web" }
}
