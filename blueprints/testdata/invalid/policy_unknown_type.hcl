policy "p" {
  type = "thresold"
}
