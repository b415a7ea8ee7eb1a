# What the ledger's own log lines say, as metrics, and the alerts on them (docs/operations.md,
# "Metrics and alerts"). Two log-based metrics read fields the code writes on every line
# concerned (shared/arus/outbox/relay.py, shared/arus/platform/telemetry.py):
#   outbox_lag       `relay run` lines of the relay function: outbox_lag_s, the age in seconds
#                    of the oldest event still unpublished after the run (0 when none is)
#   entries_written  `engine call` lines of the post_entry function: engine_call.entries_written,
#                    the entries one engine call wrote (0 for a replay or a refusal)
# Both are distributions: their count is lines (relay runs, engine calls), their sum the figure.

locals {
  # Log-based metric names become PromQL names (logging_googleapis_com:user_<name>): underscores.
  metric_prefix = replace(var.name_prefix, "-", "_")
  run_logs      = "resource.type=\"cloud_run_revision\""
  runbook       = "See docs/operations.md, \"Metrics and alerts\", in the Arus repository."

  entries_written = "logging_googleapis_com:user_${google_logging_metric.entries_written.name}"
}

resource "google_logging_metric" "outbox_lag" {
  project     = var.project_id
  name        = "${local.metric_prefix}_outbox_lag"
  description = "Age in seconds of the oldest outbox event still unpublished after each relay run (0 when none is)."
  filter = join(" AND ", [
    local.run_logs,
    "resource.labels.service_name=\"${var.service_names["relay"]}\"",
    "jsonPayload.message=\"relay run\"",
    "jsonPayload.outbox_lag_s>=0",
  ])
  value_extractor = "EXTRACT(jsonPayload.outbox_lag_s)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "Arus ${var.name_prefix} outbox lag"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 0.1 # 0.1 s to ~19 days
    }
  }
}

resource "google_logging_metric" "entries_written" {
  project     = var.project_id
  name        = "${local.metric_prefix}_entries_written"
  description = "Entries each posting-engine call of the API wrote: the count is engine calls, the sum entries."
  filter = join(" AND ", [
    local.run_logs,
    "resource.labels.service_name=\"${var.service_names["post_entry"]}\"",
    "jsonPayload.message=\"engine call\"",
    "jsonPayload.engine_call.entries_written>=0",
  ])
  value_extractor = "EXTRACT(jsonPayload.engine_call.entries_written)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Arus ${var.name_prefix} entries written"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 12
      growth_factor      = 2
      scale              = 1 # 1 to 4,096 entries; a refusal or a replay (0) underflows
    }
  }
}

# Events wait longer than the threshold after a run: publishing fails (the run logs its error)
# or the relay cannot keep up within its time budget.
resource "google_monitoring_alert_policy" "outbox_lag" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: outbox lag above ${var.alerts.outbox_lag_threshold_s} s"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alerts.notification_channels

  conditions {
    display_name = "oldest unpublished event, p99 over 5 minutes"
    condition_threshold {
      filter          = "${local.run_logs} AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.outbox_lag.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.outbox_lag_threshold_s
      duration        = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "Outbox events are not reaching the topic. ${local.runbook}"
    mime_type = "text/markdown"
  }
}

# No relay run logged for 10 minutes: the scheduler is paused or failing, or the relay cannot
# start. The lag metric above then has nothing to say, so its silence is an alert of its own.
resource "google_monitoring_alert_policy" "relay_silent" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: no relay run for 10 minutes"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alerts.notification_channels

  conditions {
    display_name = "no relay run line"
    condition_absent {
      filter   = "${local.run_logs} AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.outbox_lag.name}\""
      duration = "600s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "The relay has not run: events wait in the outbox. ${local.runbook}"
    mime_type = "text/markdown"
  }
}

# Engine calls keep arriving but none writes an entry for 10 minutes: every write is refused
# or fails (a revoked key, a closed day, a database refusing work). No traffic is no alert.
resource "google_monitoring_alert_policy" "entries_stalled" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: writes arrive but no entry is written"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.alerts.notification_channels

  conditions {
    display_name = "engine calls > 0 and entries/s = 0 over 10 minutes"
    condition_prometheus_query_language {
      query               = <<-EOT
        sum(rate(${local.entries_written}_count{monitored_resource="cloud_run_revision"}[10m])) > 0
        and
        sum(rate(${local.entries_written}_sum{monitored_resource="cloud_run_revision"}[10m])) == 0
      EOT
      duration            = "600s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    content   = "Writes reach the posting engine and every one is refused or fails. ${local.runbook}"
    mime_type = "text/markdown"
  }
}

# More than api_5xx_ratio of the API's answers are 5xx over 5 minutes (Cloud Run's own request
# count: it sees the answers the app never logged, a crash included). A 503 is the database
# down or timing out (service_unavailable).
resource "google_monitoring_alert_policy" "api_errors" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: API 5xx above ${var.alerts.api_5xx_ratio * 100}%"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alerts.notification_channels

  conditions {
    display_name = "5xx answers / all answers, per API function"
    condition_threshold {
      filter             = "${local.run_logs} AND resource.labels.service_name=one_of(\"${var.service_names["post_entry"]}\", \"${var.service_names["query"]}\") AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = "${local.run_logs} AND resource.labels.service_name=one_of(\"${var.service_names["post_entry"]}\", \"${var.service_names["query"]}\") AND metric.type=\"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alerts.api_5xx_ratio
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "The API answers with server errors. ${local.runbook}"
    mime_type = "text/markdown"
  }
}
