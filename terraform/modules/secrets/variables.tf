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

variable "secret_name" {
  description = "The secret's name after the prefix: db-password (the owner), db-app-password (the application's user)."
  type        = string
  default     = "db-password"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.secret_name))
    error_message = "secret_name is lowercase letters, digits and dashes."
  }
}

variable "password_version" {
  description = "The database password's version; increasing it generates a new password and a new secret version (see docs/runbook-cloud-run.md, \"Rotate the database password\")."
  type        = number
  default     = 1

  validation {
    condition     = var.password_version >= 1 && floor(var.password_version) == var.password_version
    error_message = "password_version is a whole number from 1."
  }
}
