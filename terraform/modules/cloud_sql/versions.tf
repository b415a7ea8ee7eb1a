terraform {
  required_version = ">= 1.11" # write-only arguments, removed blocks

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.31, < 7.0" # settings.retain_backups_on_delete (6.31), password_wo (6.23)
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.7, < 4.0" # random_id for the instance name's suffix
    }
  }
}
