variable "project_id" {
  description = "Project of the log-based metrics and alert policies."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every metric and policy name (arus-<environment>)."
  type        = string
}

variable "service_names" {
  description = "Map of function name (post_entry, query, relay, daily_close) to its Cloud Run service name: the logs and request counts each metric and alert reads."
  type        = map(string)

  validation {
    condition     = alltrue([for name in ["post_entry", "query", "relay"] : contains(keys(var.service_names), name)])
    error_message = "service_names must name the post_entry, query and relay services."
  }
}

variable "alerts" {
  description = "Alert thresholds and where alerts go: outbox_lag_threshold_s (seconds the oldest unpublished event may wait after a relay run), api_5xx_ratio (share of API answers that may be 5xx over 5 minutes) and notification_channels (ids of existing notification channels; empty: incidents show in the console only)."
  type = object({
    outbox_lag_threshold_s = number
    api_5xx_ratio          = number
    notification_channels  = list(string)
  })

  validation {
    condition     = var.alerts.outbox_lag_threshold_s > 0 && var.alerts.api_5xx_ratio > 0 && var.alerts.api_5xx_ratio < 1
    error_message = "outbox_lag_threshold_s must be positive and api_5xx_ratio between 0 and 1."
  }
}
