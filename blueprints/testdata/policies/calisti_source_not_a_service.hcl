imports = ["common.hcl"]
input "mesh_token" { sensitive = true }
source "mesh" {
  kind         = "calisti"
  url          = "https://calisti.example/api/graphql"
  node         = node.web
  bearer_token = input.mesh_token
}
