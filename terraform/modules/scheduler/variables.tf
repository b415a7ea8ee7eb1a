variable "project_id" {
  description = "Google Cloud project that holds the jobs."
  type        = string
}

variable "region" {
  description = "Region of the jobs and of the Cloud Run services they call."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every job name, for example \"arus-dev\"."
  type        = string
}

variable "scheduler_service_account_email" {
  description = "Service account whose OIDC token the jobs send; granted roles/run.invoker on the two targets only."
  type        = string
}

variable "targets" {
  description = "Map of job (relay, daily_close) to its Cloud Run service: full service name and run.app URI."
  type = map(object({
    service_name = string
    uri          = string
  }))

  validation {
    condition     = length(var.targets) == 2 && length(setsubtract(["relay", "daily_close"], keys(var.targets))) == 0
    error_message = "targets needs exactly relay and daily_close."
  }
}

variable "relay_schedule" {
  description = "Cron schedule (UTC) of the relay."
  type        = string
  default     = "* * * * *"
}

variable "daily_close_schedule" {
  description = "Cron schedule (UTC) of the daily close: 00:15, a quarter of an hour after the UTC day it closes has ended."
  type        = string
  default     = "15 0 * * *"
}

variable "paused" {
  description = "Create the jobs paused (for example while a migration runs)."
  type        = bool
  default     = false
}
