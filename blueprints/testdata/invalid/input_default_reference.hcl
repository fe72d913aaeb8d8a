input "a" { default = 1 }
input "b" { default = input.a }
