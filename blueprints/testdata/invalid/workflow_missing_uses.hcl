workflow "scale" {
  description = "no implementation"
}
