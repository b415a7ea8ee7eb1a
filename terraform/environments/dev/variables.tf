variable "project_id" {
  description = "Google Cloud project to deploy Arus dev into (must already exist, with billing and the APIs of docs/runbook-cloud-run.md enabled)."
  type        = string
}

variable "region" {
  description = "Region for every regional resource; the cost table in docs/cost.md assumes us-central1."
  type        = string
  default     = "us-central1"
}

variable "database_version" {
  description = "PostgreSQL major version of the Cloud SQL instance (POSTGRES_16, POSTGRES_17 or POSTGRES_18)."
  type        = string
  default     = "POSTGRES_17"
}

variable "source_archives" {
  description = "Map of function name to the zip `arus bundle` built, relative to this directory."
  type        = map(string)
  default = {
    post_entry  = "../../../build/bundles/post_entry.zip"
    query       = "../../../build/bundles/query.zip"
    relay       = "../../../build/bundles/relay.zip"
    daily_close = "../../../build/bundles/daily_close.zip"
  }
}

variable "db_password_version" {
  description = "Increase it to rotate the database password (docs/runbook-cloud-run.md, \"Rotate the database password\")."
  type        = number
  default     = 1
}

variable "db_app_password_version" {
  description = "Increase it to rotate the application user's password (docs/runbook-cloud-run.md, \"Rotate the database password\")."
  type        = number
  default     = 1
}

variable "db_app_user_via_api" {
  description = "Create the application's user through the Cloud SQL Admin API; false if `arus app-user` cannot strip cloudsqlsuperuser from it (docs/runbook-cloud-run.md)."
  type        = bool
  default     = true
}

variable "scheduler_paused" {
  description = "Keep the relay and daily close jobs paused, for example during a migration."
  type        = bool
  default     = false
}
