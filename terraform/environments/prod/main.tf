# Arus prod: the same modules as dev on a dedicated-core, highly available database, with
# deletion protection, longer retention and warm API instances.

locals {
  environment = "prod"
  name_prefix = "arus-${local.environment}"

  function_names = ["post_entry", "query", "relay", "daily_close"]

  # What makes prod prod (compare environments/dev/main.tf).
  database = {
    tier                           = "db-custom-1-3840" # 1 dedicated vCPU, 3.75 GB
    edition                        = "ENTERPRISE"
    availability_type              = "REGIONAL" # standby in a second zone
    disk_size_gb                   = 20
    deletion_protection            = true
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
