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

variable "sql_instance_name" {
  description = "Name of the Cloud SQL instance the functions may connect to (and no other)."
  type        = string
}

variable "db_password_secret_name" {
  description = "Full resource name of the database password secret; each function may read that secret and no other."
  type        = string
}

variable "events_topic_id" {
  description = "Full name of the events topic the publisher functions may publish to."
  type        = string
}
