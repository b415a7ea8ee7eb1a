# Cloud Scheduler jobs that call the relay and the daily close with an OIDC token signed as
# the scheduler's service account, which is the only principal with roles/run.invoker on
# those two Cloud Run services.

locals {
  jobs = {
    relay = {
      description      = "Drain the Arus outbox to Pub/Sub."
      schedule         = var.relay_schedule
      attempt_deadline = "180s"
      # A missed run is made up by the next one a minute later.
      retry_count = 0
    }
    daily_close = {
      description      = "Arus end-of-day balance snapshots and close report."
      schedule         = var.daily_close_schedule
      attempt_deadline = "1200s"
      # The close of a date is idempotent, so a failed attempt is retried.
      retry_count = 3
    }
  }
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invoker" {
  for_each = local.jobs

  project  = var.project_id
  location = var.region
  name     = var.targets[each.key].service_name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.scheduler_service_account_email}"
}

resource "google_cloud_scheduler_job" "job" {
  for_each = local.jobs

  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = each.value.attempt_deadline
  paused           = var.paused

  retry_config {
    retry_count          = each.value.retry_count
    min_backoff_duration = "30s"
    max_backoff_duration = "600s"
    max_doublings        = 3
  }

  http_target {
    http_method = "POST"
    uri         = var.targets[each.key].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = var.scheduler_service_account_email
      audience              = var.targets[each.key].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invoker]
}
