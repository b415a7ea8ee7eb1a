# Identities and every grant they hold on data: one service account per function, one for
# Cloud Scheduler, one for Cloud Build. No primitive role (owner/editor/viewer) anywhere.
#
# | who               | role                              | on                                    |
# |-------------------|-----------------------------------|---------------------------------------|
# | each function     | roles/cloudsql.client             | the placements' instances (condition) |
# | each function     | roles/secretmanager.secretAccessor| its own login's password secret only  |
# | relay             | roles/pubsub.publisher            | the events topic only                 |
# | build             | roles/logging.logWriter           | project (build logs)                  |
# | build             | roles/storage.objectAdmin         | gcf-v2-* buckets only (condition)     |
# Grants on the things the functions module owns (source bucket, image repository, public
# invoker) live there; the scheduler's invoker grant lives in the scheduler module.

locals {
  # Cloud SQL accepts IAM conditions on the instance's resource name (not on databases): one
  # comparison per placement's instance. With one instance the condition and its title are
  # what they were before placements, so the grant is not replaced.
  ledger_instance_names = [
    for name in var.sql_instance_names : "resource.name == \"projects/${var.project_id}/instances/${name}\""
  ]
  ledger_instance_condition = join(" && ", [
    "resource.type == \"sqladmin.googleapis.com/Instance\"",
    length(local.ledger_instance_names) == 1 ? local.ledger_instance_names[0] : "(${join(" || ", local.ledger_instance_names)})",
  ])
  ledger_instance_title = (
    length(var.sql_instance_names) == 1 ? "only-${var.sql_instance_names[0]}" : "only-the-${var.name_prefix}-ledger-instances"
  )
}

resource "google_service_account" "function" {
  for_each = toset(var.function_names)

  project      = var.project_id
  account_id   = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  display_name = "Arus ${each.key} function"
  description  = "Runtime identity of the ${each.key} Cloud Run function; used by nothing else."
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Arus Cloud Scheduler invoker"
  description  = "Signs the OIDC tokens Cloud Scheduler sends to the relay and daily_close functions."
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Arus function builds"
  description  = "Cloud Build identity for the functions' source builds, instead of the default compute account."
}

resource "google_project_iam_member" "cloudsql_client" {
  for_each = google_service_account.function

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${each.value.email}"

  condition {
    title       = local.ledger_instance_title
    description = "Connect to the Arus ledger instances (one per placement) and no other."
    expression  = local.ledger_instance_condition
  }

  lifecycle {
    # A placement added or removed changes the condition, which replaces the grant: the new
    # one is made before the old one goes, so no function is ever without it.
    create_before_destroy = true
  }
}

# One login per job (SPEC §3.6): each function may read its own role's password secret and no
# other, so a function can connect only as its own login.
resource "google_secret_manager_secret_iam_member" "login_password_accessor" {
  for_each = google_service_account.function

  project   = var.project_id
  secret_id = var.function_db_password_secrets[each.key]
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value.email}"
}

# Deployments made before one login per job granted every function the shared application
# user's secret at this address. Forget those grants instead of revoking them, so a revision
# still running on that secret can start instances while the functions move; they go with the
# secret itself, deleted last (docs/runbook-cloud-run.md, "Upgrading to one login per job").
removed {
  from = google_secret_manager_secret_iam_member.db_password_accessor

  lifecycle {
    destroy = false
  }
}

resource "google_pubsub_topic_iam_member" "events_publisher" {
  # Only the relay publishes: post_entry and daily_close write outbox rows in their own
  # transactions, and the relay moves them to the topic.
  for_each = toset(var.publisher_functions)

  project = var.project_id
  topic   = var.events_topic_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"
}

# Each function writes its spans to Cloud Trace (ADR-010). Traces are a project-level resource:
# the role cannot be narrowed by a condition, and it only writes (cloudtrace.traces.patch).
resource "google_project_iam_member" "trace_agent" {
  for_each = google_service_account.function

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = "serviceAccount:${each.value.email}"
}

resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_project_iam_member" "build_function_sources" {
  # Cloud Run functions stage each source archive in Google-created gcf-v2-sources-* and
  # gcf-v2-uploads-* buckets that the build reads and writes; the condition keeps the build
  # away from every other bucket (the Terraform state bucket in particular).
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf-v2-buckets-only"
    description = "Only the buckets Cloud Run functions creates for source staging."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-\")"
  }
}
