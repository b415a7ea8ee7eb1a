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
  description = "The secret's name after the prefix: db-password (the owner), db-<role>-password (a runtime login: db-api-password, db-relay-password, db-close-password)."
  type        = string
  default     = "db-password"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.secret_name))
    error_message = "secret_name is lowercase letters, digits and dashes."
  }
}

variable "password_version" {
  description = "The database password's version; raising it generates a new password and a new secret version (docs/runbook-cloud-run.md, \"Rotate a database password\")."
  type        = number
  default     = 1

  validation {
    condition     = var.password_version >= 1 && floor(var.password_version) == var.password_version
    error_message = "password_version is a whole number from 1."
  }
}

variable "served_version" {
  description = "For a runtime login, whose password the owner sets in SQL: the version its readers are pinned to, password_version or the one before it while the database does not yet have the new password. null (the owner) pins the readers to the newest version."
  type        = number
  default     = null

  validation {
    condition = var.served_version == null ? true : (
      floor(var.served_version) == var.served_version &&
      var.served_version >= max(1, var.password_version - 1) &&
      var.served_version <= var.password_version
    )
    error_message = "served_version is password_version, or password_version - 1 while the new password is not yet set in the database."
  }
}
