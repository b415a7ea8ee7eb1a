variable "project_id" {
  description = "Google Cloud project that holds the secret."
  type        = string
}

variable "region" {
  description = "The one region the secret is replicated to (the database's region)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name, for example \"arus-dev\"."
  type        = string
}

variable "password_rotation_id" {
  description = "Any string; changing it generates a new database password and a new secret version (see docs/runbook-cloud-run.md, \"Rotate the database password\")."
  type        = string
  default     = "initial"
}
