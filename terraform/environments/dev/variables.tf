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

# The password versions have no default: they live in password_versions.auto.tfvars, committed,
# so a rotation is a reviewed change that every later apply keeps (one passed with -var would
# be undone by the next apply without it).
variable "db_owner_password_version" {
  description = "The owner's password version; raise it in password_versions.auto.tfvars to rotate that password (docs/runbook-cloud-run.md, \"Rotate a database password\")."
  type        = number
}

variable "db_login_password_versions" {
  description = "Map of role (api, relay, close) to { generated, served }, its login's password versions, in password_versions.auto.tfvars (docs/runbook-cloud-run.md, \"Rotate a database password\")."
  type = map(object({
    generated = number
    served    = number
  }))
}

variable "scheduler_paused" {
  description = "Keep the relay and daily close jobs paused, for example during a migration."
  type        = bool
  default     = false
}

variable "alert_notification_channels" {
  description = "Ids of existing Cloud Monitoring notification channels (projects/<project>/notificationChannels/<id>) that the alerts notify; empty: incidents show in the console only."
  type        = list(string)
  default     = []
}
