# Plugin node types check their properties too: a namespace that is no
# Kubernetes namespace, an app that is no label value, a port out of range.
node "cluster" {
  type = "kubernetes.cluster"
}
node "web" {
  type         = "kubernetes.app"
  contained_in = node.cluster
  properties   = { namespace = "Shop_Prod", app = "web app" }
}
node "master" {
  type       = "kubernetes.master"
  properties = { host = "10.0.0.1", port = 70000 }
}
