# One Arus deployment: the six modules wired together. environments/dev and environments/prod
# each call this once; everything that differs between them arrives as a variable.

locals {
  name_prefix = "arus-${var.environment}"
  labels      = { app = "arus", environment = var.environment }

  function_names = ["post_entry", "query", "relay", "daily_close"]

  # Every API the stack uses. Service Usage and Resource Manager must already be on to enable
  # these (the runbook's first step turns those two on).
  services = toset([
    "iam.googleapis.com",
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "storage.googleapis.com",
    "sqladmin.googleapis.com",
    "secretmanager.googleapis.com",
    "pubsub.googleapis.com",
    "cloudscheduler.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.services

  project = var.project_id
  service = each.value
  # dev and prod may share a project: destroying one must not turn an API off for the other.
  disable_on_destroy = false
}

# Enabling an API returns before every Google service accepts calls for it (a first apply then
# fails on "API has not been used in project ... or it is disabled"). Every module waits for this.
resource "time_sleep" "apis_enabled" {
  depends_on = [google_project_service.enabled]

  create_duration = "60s"
  triggers = {
    services = join(",", sort(local.services))
  }
}

# The project's number names its Pub/Sub service agent. Read at plan time: no depends_on, so it
# is never deferred (the project and Resource Manager exist before Terraform runs).
data "google_project" "this" {
  project_id = var.project_id
}

module "secrets" {
  source     = "../secrets"
  depends_on = [time_sleep.apis_enabled]

  project_id       = var.project_id
  region           = var.region
  name_prefix      = local.name_prefix
  password_version = var.db_password_version
}

# The application user's password: the only database secret the functions can read.
module "app_secrets" {
  source     = "../secrets"
  depends_on = [time_sleep.apis_enabled]

  project_id       = var.project_id
  region           = var.region
  name_prefix      = local.name_prefix
  secret_name      = "db-app-password"
  password_version = var.db_app_password_version
}

module "cloud_sql" {
  source     = "../cloud_sql"
  depends_on = [time_sleep.apis_enabled]

  project_id                     = var.project_id
  region                         = var.region
  name_prefix                    = local.name_prefix
  unique_name                    = var.database.unique_name
  database_version               = var.database_version
  tier                           = var.database.tier
  edition                        = var.database.edition
  availability_type              = var.database.availability_type
  disk_size_gb                   = var.database.disk_size_gb
  deletion_protection            = var.database.deletion_protection
  retained_backups               = var.database.retained_backups
  transaction_log_retention_days = var.database.transaction_log_retention_days
  user_password                  = module.secrets.password
  user_password_version          = module.secrets.password_version
  app_user_password              = module.app_secrets.password
  app_user_password_version      = module.app_secrets.password_version
  app_user_via_api               = var.db_app_user_via_api
  retain_backups_on_delete       = var.database.retain_backups_on_delete
  labels                         = local.labels
}

module "pubsub" {
  source     = "../pubsub"
  depends_on = [time_sleep.apis_enabled]

  project_id              = var.project_id
  project_number          = data.google_project.this.number
  region                  = var.region
  topic_message_retention = var.topic_message_retention
  # dev and prod may share a project: every topic and subscription name carries the prefix.
  topic_name = "${local.name_prefix}-ledger-events"
}

module "iam" {
  source     = "../iam"
  depends_on = [time_sleep.apis_enabled]

  project_id              = var.project_id
  name_prefix             = local.name_prefix
  function_names          = local.function_names
  publisher_functions     = ["relay"]
  sql_instance_name       = module.cloud_sql.instance_name
  db_password_secret_name = module.app_secrets.secret_name
  events_topic_id         = module.pubsub.topic_id
}

# The functions' accounts must hold their grants (Cloud SQL client, their secret, the topic)
# before a revision starts with them; IAM changes take seconds to minutes to propagate.
resource "time_sleep" "iam_propagated" {
  depends_on = [module.iam]

  create_duration = "120s"

  triggers = {
    grants = sha256(jsonencode(module.iam.grant_ids))
  }
}

module "functions" {
  source = "../functions"

  project_id                  = var.project_id
  region                      = var.region
  name_prefix                 = local.name_prefix
  source_archives             = var.source_archives
  service_account_emails      = module.iam.function_service_account_emails
  build_service_account_id    = module.iam.build_service_account_id
  build_service_account_email = module.iam.build_service_account_email
  min_instance_count          = var.min_instance_count
  max_instance_count          = var.max_instance_count
  cloudsql_connection_name    = module.cloud_sql.connection_name
  db_name                     = module.cloud_sql.database_name
  db_user                     = module.cloud_sql.app_user_name
  db_ip_type                  = "public"
  db_pool_size                = var.db_pool_size
  db_max_overflow             = var.db_max_overflow
  db_connection_limit         = var.database.max_connections - var.database.reserved_connections
  db_password_secret_id       = module.app_secrets.secret_id
  db_password_secret_version  = module.app_secrets.secret_version
  events_topic_id             = module.pubsub.topic_id
  force_destroy_sources       = var.force_destroy_sources

  # A function must not start before its account can reach the database, the secret and the
  # topic, nor build before the build account has its grants.
  depends_on = [time_sleep.iam_propagated, time_sleep.apis_enabled]
}

module "scheduler" {
  source     = "../scheduler"
  depends_on = [time_sleep.apis_enabled]

  project_id                      = var.project_id
  region                          = var.region
  name_prefix                     = local.name_prefix
  scheduler_service_account_email = module.iam.scheduler_service_account_email
  paused                          = var.scheduler_paused

  targets = {
    for name in module.functions.scheduled_functions : name => {
      service_name = module.functions.service_names[name]
      uri          = module.functions.service_uris[name]
    }
  }
}
