# Arus dev: the smallest deployment that runs the whole ledger on Google Cloud.
# prod composes the same modules; the differences are all in the locals below.

locals {
  environment = "dev"
  name_prefix = "arus-${local.environment}"

  function_names = ["post_entry", "query", "relay", "daily_close"]

  # What makes dev dev (compare environments/prod/main.tf).
  database = {
    tier                           = "db-f1-micro" # shared core, 0.6 GB: the smallest tier
    edition                        = "ENTERPRISE"  # db-f1-micro needs ENTERPRISE on PostgreSQL 16+
    availability_type              = "ZONAL"
    disk_size_gb                   = 10
    deletion_protection            = false
    retained_backups               = 7
    transaction_log_retention_days = 3
    # db-f1-micro allows 25 connections; keep 5 for migrations and operators.
    connection_limit = 20
  }
  min_instance_count = { post_entry = 0, query = 0, relay = 0, daily_close = 0 }
  # 3 + 3 + 1 + 1 instances x 2 connections = 16 <= 20.
  max_instance_count      = { post_entry = 3, query = 3, relay = 1, daily_close = 1 }
  db_pool_size            = 2
  db_max_overflow         = 0
  topic_message_retention = "86400s" # 1 day
  force_destroy_sources   = true
}

module "secrets" {
  source = "../../modules/secrets"

  project_id           = var.project_id
  region               = var.region
  name_prefix          = local.name_prefix
  password_rotation_id = var.db_password_rotation_id
}

module "cloud_sql" {
  source = "../../modules/cloud_sql"

  project_id                     = var.project_id
  region                         = var.region
  name_prefix                    = local.name_prefix
  database_version               = var.database_version
  tier                           = local.database.tier
  edition                        = local.database.edition
  availability_type              = local.database.availability_type
  disk_size_gb                   = local.database.disk_size_gb
  deletion_protection            = local.database.deletion_protection
  retained_backups               = local.database.retained_backups
  transaction_log_retention_days = local.database.transaction_log_retention_days
  user_password                  = module.secrets.password
}

module "pubsub" {
  source = "../../modules/pubsub"

  project_id              = var.project_id
  region                  = var.region
  topic_message_retention = local.topic_message_retention
}

module "iam" {
  source = "../../modules/iam"

  project_id              = var.project_id
  name_prefix             = local.name_prefix
  function_names          = local.function_names
  publisher_functions     = ["relay"]
  sql_instance_name       = module.cloud_sql.instance_name
  db_password_secret_name = module.secrets.secret_name
  events_topic_id         = module.pubsub.topic_id
}

module "functions" {
  source = "../../modules/functions"

  project_id                  = var.project_id
  region                      = var.region
  name_prefix                 = local.name_prefix
  source_archives             = var.source_archives
  service_account_emails      = module.iam.function_service_account_emails
  build_service_account_id    = module.iam.build_service_account_id
  build_service_account_email = module.iam.build_service_account_email
  min_instance_count          = local.min_instance_count
  max_instance_count          = local.max_instance_count
  cloudsql_connection_name    = module.cloud_sql.connection_name
  db_name                     = module.cloud_sql.database_name
  db_user                     = module.cloud_sql.user_name
  db_ip_type                  = "public"
  db_pool_size                = local.db_pool_size
  db_max_overflow             = local.db_max_overflow
  db_connection_limit         = local.database.connection_limit
  db_password_secret_id       = module.secrets.secret_id
  db_password_secret_version  = module.secrets.secret_version
  events_topic_id             = module.pubsub.topic_id
  force_destroy_sources       = local.force_destroy_sources

  # A function must not start before its account can reach the database, the secret and the
  # topic, nor build before the build account has its grants.
  depends_on = [module.iam]
}

module "scheduler" {
  source = "../../modules/scheduler"

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
