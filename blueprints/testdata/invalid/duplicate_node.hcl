node "web" {}
node "web" {}
