# The four Cloud Run functions (gen2) of SPEC §1, their source archives and build storage.
#
# Each function's source is the zip `arus bundle` writes to build/bundles/<name>.zip (main.py,
# a pinned requirements.txt and a vendored copy of shared/arus). The object is named after the
# archive's SHA-256: a new zip is a new object name, which is what makes Terraform redeploy,
# and a rebuild of the same commit (bundles are reproducible) points back at the same object.

locals {
  functions = {
    post_entry = {
      description = "Arus: every ledger mutation (accounts, entries, reversals)."
      timeout_s   = 60
      ingress     = "ALLOW_ALL"
    }
    query = {
      description = "Arus: every ledger read (accounts, postings, entries, trial balance, balances)."
      timeout_s   = 60
      ingress     = "ALLOW_ALL"
    }
    relay = {
      description = "Arus: drains the outbox to Pub/Sub; called by Cloud Scheduler every minute."
      timeout_s   = 120
      ingress     = "ALLOW_INTERNAL_ONLY"
    }
    daily_close = {
      description = "Arus: end-of-day balance snapshots and the close report; called by Cloud Scheduler."
      timeout_s   = 900
      ingress     = "ALLOW_INTERNAL_ONLY"
    }
  }

  # The ledger API: anyone on the internet may reach it, and every request must carry an API
  # key the application checks (SPEC §3).
  public_functions = ["post_entry", "query"]

  # Jobs: internal ingress (Cloud Scheduler in the same project counts as internal when it
  # calls the run.app URL) and invokable only by the scheduler's service account.
  scheduled_functions = ["relay", "daily_close"]

  # Each instance serves one request at a time and holds at most this many connections.
  connections_per_instance = var.db_pool_size + var.db_max_overflow
  # During a deploy the old revision keeps serving (and may scale to its own ceiling) until the
  # new one is ready, so the budget must hold for two revisions at once.
  revisions_during_deploy = 2
  connection_budget = local.revisions_during_deploy * sum([
    for name in keys(local.functions) : var.max_instance_count[name] * local.connections_per_instance
  ])

  # Every placement (SPEC §9), in order: name=<instance connection name>, comma separated. Each
  # function reaches each placement through the Cloud SQL connector, as its own login.
  arus_placements = join(",", [for placement in var.placements : "${placement.name}=${placement.target}"])

  # Shared by every function; each adds its own login (ARUS_DB_USER) below.
  environment_variables = {
    ARUS_PLACEMENTS          = local.arus_placements
    ARUS_DB_NAME             = var.db_name
    ARUS_DB_IP_TYPE          = var.db_ip_type
    ARUS_DB_POOL_SIZE        = tostring(var.db_pool_size)
    ARUS_DB_MAX_OVERFLOW     = tostring(var.db_max_overflow)
    ARUS_OUTBOX_TRANSPORT    = "pubsub"
    ARUS_PUBSUB_TOPIC        = var.events_topic_id
    ARUS_RELAY_TIME_BUDGET_S = tostring(var.relay_time_budget_s)
    # Spans to Cloud Trace; log lines name their trace in this project (ADR-010).
    ARUS_TRACE_EXPORTER = "gcp"
    ARUS_TRACE_PROJECT  = var.project_id
  }
}

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Holds only the functions' source archives, written by Terraform; object reads and writes are already in Cloud Audit Logs for whoever enables Data Access logs, and a second log bucket would need its own exemption.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-fn-sources"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_sources

  # Replaced archives stay as noncurrent versions for a while, for forensics after a bad deploy.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_source_retention_days
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_object" "source" {
  for_each = var.source_archives

  bucket       = google_storage_bucket.sources.name
  name         = "${each.key}/${filesha256(each.value)}.zip"
  source       = each.value
  content_type = "application/zip"
}

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Images are rebuilt from the source archives at every deploy and hold no data; Google-managed encryption is enough and a CMEK key would be the only key in the project.
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "Container images Cloud Build makes from the Arus function sources."
  format        = "DOCKER"

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.images_kept_per_function
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s" # 30 days; the KEEP policy above wins for the most recent images
    }
  }
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${var.build_service_account_email}"
}

resource "google_artifact_registry_repository_iam_member" "build_writes_images" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${var.build_service_account_email}"
}

# IAM grants take effect within seconds to minutes; a build that starts before the build
# account's grants have propagated fails on storage or Artifact Registry. Wait once after they
# are made (and again whenever one of them is replaced).
resource "time_sleep" "build_grants_propagated" {
  create_duration = var.iam_propagation_wait

  triggers = {
    sources = google_storage_bucket_iam_member.build_reads_sources.id
    images  = google_artifact_registry_repository_iam_member.build_writes_images.id
  }
}

resource "google_cloudfunctions2_function" "function" {
  #checkov:skip=CKV_GCP_124:post_entry and query are the public ledger API and must accept traffic from the internet (ALLOW_ALL); each request is authenticated by its API key. relay and daily_close are ALLOW_INTERNAL_ONLY (local.functions; asserted by tests/test_terraform.py).
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description = each.value.description

  build_config {
    runtime           = var.runtime
    entry_point       = each.key
    service_account   = var.build_service_account_id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    service_account_email            = var.service_account_emails[each.key]
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    timeout_seconds                  = each.value.timeout_s
    min_instance_count               = var.min_instance_count[each.key]
    max_instance_count               = var.max_instance_count[each.key]
    max_instance_request_concurrency = 1
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true

    # One login per job (SPEC §3.6): the function connects as its role's login, the same user
    # on every placement ...
    environment_variables = merge(local.environment_variables, {
      ARUS_DB_USER = var.db_logins[var.function_db_roles[each.key]].user
    })

    # ... with that login's password, and no other, as ARUS_DB_PASSWORD from Secret Manager,
    # pinned to a version number so that a rotation rolls out as a new revision.
    secret_environment_variables {
      key        = "ARUS_DB_PASSWORD"
      project_id = var.project_id
      secret     = var.db_logins[var.function_db_roles[each.key]].password_secret_id
      version    = var.db_logins[var.function_db_roles[each.key]].password_secret_version
    }
  }

  # The build reads the sources and pushes the image only once its grants have propagated.
  depends_on = [time_sleep.build_grants_propagated]

  lifecycle {
    precondition {
      condition     = local.connection_budget <= var.db_connection_limit
      error_message = "During a deploy the functions could open ${local.connection_budget} database connections (2 revisions x max instances x (pool size + overflow)), more than db_connection_limit = ${var.db_connection_limit}. Lower max_instance_count or the pool, or raise the database tier."
    }
  }
}

resource "google_cloud_run_v2_service_iam_member" "public_invoker" {
  #checkov:skip=CKV_GCP_102:post_entry and query are the public ledger API. Every request is authenticated at the application layer by its API key (SPEC §3: hashed keys, constant-time comparison, 401 otherwise), the way Stripe-style APIs are; relay and daily_close never get this binding.
  for_each = toset(local.public_functions)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
