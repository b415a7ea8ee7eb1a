terraform {
  required_version = ">= 1.11" # write-only arguments

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.23, < 7.0" # password_wo
    }
  }
}
