variable "project_id" {
  description = "Google Cloud project that holds the topics."
  type        = string
}

variable "project_number" {
  description = "Number of that project, which names the Pub/Sub service agent (service-<number>@gcp-sa-pubsub.iam.gserviceaccount.com)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.project_number))
    error_message = "project_number is the project's number (digits), not its id."
  }
}

variable "region" {
  description = "The only region where Pub/Sub may persist messages (the database's region)."
  type        = string
}

variable "topic_name" {
  description = "Name of the ledger events topic, with the environment's prefix (arus-<env>-ledger-events); the dead-letter topic and the subscriptions are named after it."
  type        = string
}

variable "topic_message_retention" {
  description = "How long the topics keep every message, acknowledged or not, so a subscription can seek back (for example \"86400s\"; at most 31 days)."
  type        = string
}

variable "subscription_message_retention" {
  description = "How long the example subscription keeps unacknowledged messages (10 minutes to 7 days)."
  type        = string
  default     = "604800s"
}

variable "dead_letter_retention" {
  description = "How long the dead-letter subscription keeps messages (10 minutes to 7 days)."
  type        = string
  default     = "604800s"
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}
