# Arus prod: the same stack as dev (modules/stack) on a dedicated-core, highly available
# database, with deletion protection, longer retention and warm API instances.

locals {
  environment = "prod"

  # What makes prod prod (compare environments/dev/main.tf).
  database = {
    tier                           = "db-custom-1-3840" # 1 dedicated vCPU, 3.75 GB
    edition                        = "ENTERPRISE"
    availability_type              = "REGIONAL" # standby in a second zone
    disk_size_gb                   = 20
    deletion_protection            = true
    retain_backups_on_delete       = true
    retained_backups               = 30
    transaction_log_retention_days = 7
    # Keeps its name: renaming would replace the instance.
    unique_name = false
    # 3.75 GB allows 100 connections; 10 are not the functions' (3 superuser-reserved, the rest
    # for the operator's migrations, `arus app-user` and investigations).
    max_connections      = 100
    reserved_connections = 10
  }
  # The placements (SPEC §9), each a Cloud SQL instance sized by `database` above. Add one here
  # (committed, never with -var: an apply without it would plan its instance's deletion) and
  # follow docs/runbook-cloud-run.md, "Adding a placement". main is the instance prod always had.
  placements = [
    { name = "main", engine = "cloudsql" },
  ]
  min_instance_count = { post_entry = 1, query = 1, relay = 0, daily_close = 0 }
  # 2 revisions during a deploy x (10 + 10 + 1 + 1) instances x 2 connections = 88 <= 100 - 10.
  max_instance_count = { post_entry = 10, query = 10, relay = 1, daily_close = 1 }
  # One request per instance at a time holds one connection; the second is a spare, and the
  # budget holds without overflow.
  db_pool_size            = 2
  db_max_overflow         = 0
  topic_message_retention = "604800s" # 7 days
  force_destroy_sources   = false

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
