terraform {
  required_version = ">= 1.11"

  # The stack's own resources are the project's APIs; each module it calls pins the providers
  # it uses, and the calling environment configures them.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.23, < 7.0"
    }
  }
}
