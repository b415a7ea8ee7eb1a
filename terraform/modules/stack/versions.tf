terraform {
  required_version = ">= 1.6"

  # No provider requirement here: the stack declares no resource of its own. Each module it
  # calls pins the providers it uses, and the calling environment configures them.
}
