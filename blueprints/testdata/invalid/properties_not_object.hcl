node "database" {
  properties = ["port", 5432]
}
