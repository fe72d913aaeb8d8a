nod "web" {}
