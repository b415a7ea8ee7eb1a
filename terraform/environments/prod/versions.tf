terraform {
  required_version = ">= 1.11" # ephemeral values and write-only arguments

  # The versions selected are pinned in .terraform.lock.hcl, committed beside this file.

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.31" # settings.retain_backups_on_delete
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }

  # State is local by default (terraform.tfstate in this directory, git-ignored). It holds no
  # password (they are ephemeral and reach Google only through write-only arguments), but it
  # maps the whole deployment (users, secrets, service accounts, the instance's address), so a
  # shared environment keeps it in a versioned GCS bucket that only the deployers can read
  # (docs/runbook-cloud-run.md, "Bootstrap"):
  #
  # backend "gcs" {
  #   bucket = "YOUR-PROJECT-ID-tfstate"
  #   prefix = "arus/prod"
  # }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app         = "arus"
    environment = "prod"
    managed-by  = "terraform"
  }
}
