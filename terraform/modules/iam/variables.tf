variable "project_id" {
  description = "Google Cloud project that holds the service accounts and bindings."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every service account id, for example \"arus-dev\" (account ids are at most 30 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,16}$", var.name_prefix))
    error_message = "name_prefix must be 2-17 lower-case letters, digits or hyphens, starting with a letter, so every account id fits in 30 characters."
  }
}

variable "function_names" {
  description = "The functions, one service account each."
  type        = list(string)

  validation {
    condition     = length(var.function_names) == length(distinct(var.function_names))
    error_message = "function_names must not repeat a name."
  }
}

variable "publisher_functions" {
  description = "Functions allowed to publish to the events topic (only the relay)."
  type        = list(string)
  default     = ["relay"]
}

variable "sql_instance_names" {
  description = "Names of the Cloud SQL instances the functions may connect to, one per placement (and no other)."
  type        = list(string)

  validation {
    condition     = length(var.sql_instance_names) >= 1 && length(distinct(var.sql_instance_names)) == length(var.sql_instance_names)
    error_message = "sql_instance_names needs at least one instance and must not repeat one."
  }
}

variable "function_db_password_secrets" {
  description = "Map of function name to the full resource name of its role's password secret; each function may read that secret and no other."
  type        = map(string)

  validation {
    condition = (
      length(var.function_db_password_secrets) == length(var.function_names) &&
      length(setsubtract(var.function_names, keys(var.function_db_password_secrets))) == 0
    )
    error_message = "function_db_password_secrets needs exactly one secret per function of function_names."
  }
}

variable "events_topic_id" {
  description = "Full name of the events topic the publisher functions may publish to."
  type        = string
}
