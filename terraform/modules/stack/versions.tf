terraform {
  required_version = ">= 1.11"

  # The stack's own resources are the project's APIs, the waits for them and for IAM, and the
  # project's number; each module it calls pins the providers it uses, and the calling
  # environment configures them.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.31, < 7.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.13, < 1.0" # time_sleep
    }
  }
}
