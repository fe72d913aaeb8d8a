node "vm" {}

group "a" { members = [node.vm] }
group "b" { members = [node.vm] }
