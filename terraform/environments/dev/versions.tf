terraform {
  required_version = ">= 1.11" # ephemeral values and write-only arguments

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.23"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # State is local by default (terraform.tfstate in this directory, git-ignored). It holds the
  # generated database password, so a shared environment keeps it in a versioned GCS bucket
  # that only the deployers can read (docs/runbook-cloud-run.md, "Bootstrap"):
  #
  # backend "gcs" {
  #   bucket = "YOUR-PROJECT-ID-tfstate"
  #   prefix = "arus/dev"
  # }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app         = "arus"
    environment = "dev"
    managed-by  = "terraform"
  }
}
