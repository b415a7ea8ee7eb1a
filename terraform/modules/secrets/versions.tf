terraform {
  required_version = ">= 1.11" # ephemeral resources and write-only arguments

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.31, < 7.0" # secret_data_wo (6.23)
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.7, < 4.0" # ephemeral random_password
    }
  }
}
