imports = ["does-not-exist.hcl"]
node "web" {}
