output "metric_types" {
  description = "Map of figure (outbox_lag, entries_written) to the metric type of its log-based metric, for dashboards and ad-hoc queries."
  value = {
    outbox_lag      = "logging.googleapis.com/user/${google_logging_metric.outbox_lag.name}"
    entries_written = "logging.googleapis.com/user/${google_logging_metric.entries_written.name}"
  }
}

output "alert_policy_ids" {
  description = "Map of alert (outbox_lag, relay_silent, entries_stalled, api_errors) to its policy id."
  value = {
    outbox_lag      = google_monitoring_alert_policy.outbox_lag.id
    relay_silent    = google_monitoring_alert_policy.relay_silent.id
    entries_stalled = google_monitoring_alert_policy.entries_stalled.id
    api_errors      = google_monitoring_alert_policy.api_errors.id
  }
}
