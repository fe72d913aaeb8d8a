input "size" { default = 1 }
input "size" { default = 2 }
