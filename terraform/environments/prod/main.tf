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
    # 3.75 GB allows 100 connections; keep 10 for migrations and operators.
    connection_limit = 90
  }
  min_instance_count = { post_entry = 1, query = 1, relay = 0, daily_close = 0 }
  # 10 + 10 + 1 + 1 instances x 3 connections = 66 <= 90.
  max_instance_count      = { post_entry = 10, query = 10, relay = 1, daily_close = 1 }
  db_pool_size            = 2
  db_max_overflow         = 1
  topic_message_retention = "604800s" # 7 days
  force_destroy_sources   = false
}

module "arus" {
  source = "../../modules/stack"

  project_id              = var.project_id
  region                  = var.region
  database_version        = var.database_version
  source_archives         = var.source_archives
  db_password_version     = var.db_password_version
  db_app_password_version = var.db_app_password_version
  db_app_user_via_api     = var.db_app_user_via_api
  scheduler_paused        = var.scheduler_paused

  environment             = local.environment
  database                = local.database
  min_instance_count      = local.min_instance_count
  max_instance_count      = local.max_instance_count
  db_pool_size            = local.db_pool_size
  db_max_overflow         = local.db_max_overflow
  topic_message_retention = local.topic_message_retention
  force_destroy_sources   = local.force_destroy_sources
}
