# Arus dev: the smallest deployment that runs the whole ledger on Google Cloud.
# prod calls the same stack (modules/stack); the differences are all in the locals below.

locals {
  environment = "dev"

  # What makes dev dev (compare environments/prod/main.tf).
  database = {
    tier                           = "db-f1-micro" # shared core, 0.6 GB: the smallest tier
    edition                        = "ENTERPRISE"  # db-f1-micro needs ENTERPRISE on PostgreSQL 16+
    availability_type              = "ZONAL"
    disk_size_gb                   = 10
    deletion_protection            = false
    retain_backups_on_delete       = false
    retained_backups               = 7
    transaction_log_retention_days = 3
    # Torn down and re-created: a fresh name each time (Cloud SQL keeps a deleted name a week).
    unique_name = true
    # db-f1-micro allows 25 connections; 5 are not the functions' (3 superuser-reserved, 2 for
    # the operator's migrations and `arus app-user`).
    max_connections      = 25
    reserved_connections = 5
  }
  # One placement (SPEC §9), main: dev is one instance. Every placement is an instance sized by
  # `database` above.
  placements = [
    { name = "main", engine = "cloudsql" },
  ]
  min_instance_count = { post_entry = 0, query = 0, relay = 0, daily_close = 0 }
  # 2 revisions during a deploy x (3 + 3 + 1 + 1) instances x 1 connection = 16 <= 25 - 5.
  max_instance_count = { post_entry = 3, query = 3, relay = 1, daily_close = 1 }
  # One request per instance at a time, one connection per request.
  db_pool_size            = 1
  db_max_overflow         = 0
  topic_message_retention = "86400s" # 1 day
  force_destroy_sources   = true

  # docs/operations.md, "Alerts": events waiting 5 minutes after a run, 1% of answers 5xx.
  alerts = {
    outbox_lag_threshold_s = 300
    api_5xx_ratio          = 0.01
    notification_channels  = var.alert_notification_channels
  }
}

module "arus" {
  source = "../../modules/stack"

  project_id                 = var.project_id
  region                     = var.region
  database_version           = var.database_version
  source_archives            = var.source_archives
  db_owner_password_version  = var.db_owner_password_version
  db_login_password_versions = var.db_login_password_versions
  scheduler_paused           = var.scheduler_paused

  environment             = local.environment
  database                = local.database
  placements              = local.placements
  min_instance_count      = local.min_instance_count
  max_instance_count      = local.max_instance_count
  db_pool_size            = local.db_pool_size
  db_max_overflow         = local.db_max_overflow
  topic_message_retention = local.topic_message_retention
  force_destroy_sources   = local.force_destroy_sources
  alerts                  = local.alerts
}
