node "web server" {}
