imports = [node.web]
