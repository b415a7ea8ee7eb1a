output "api_urls" {
  description = "HTTPS URLs of the public ledger API: post_entry (mutations) and query (reads)."
  value = {
    post_entry = module.functions.function_urls["post_entry"]
    query      = module.functions.function_urls["query"]
  }
}

output "cloudsql_connection_name" {
  description = "Instance connection name, for ARUS_CLOUDSQL_INSTANCE when running `arus migrate` or the Cloud SQL Auth Proxy."
  value       = module.cloud_sql.connection_name
}

output "database_name" {
  description = "Ledger database name (ARUS_DB_NAME)."
  value       = module.cloud_sql.database_name
}

output "database_user" {
  description = "The application's PostgreSQL user (ARUS_DB_USER of the functions; member of arus_app only)."
  value       = module.cloud_sql.app_user_name
}

output "db_password_secret" {
  description = "Full name of the secret holding the application user's password, the functions' only database secret (never the password itself)."
  value       = module.app_secrets.secret_name
}

output "database_owner" {
  description = "The PostgreSQL user that owns the schema: `arus migrate`, `arus app-user`, ledgers and keys."
  value       = module.cloud_sql.user_name
}

output "db_owner_password_secret" {
  description = "Full name of the secret holding the owner's password, for the operator only (never the password itself)."
  value       = module.secrets.secret_name
}

output "events_topic" {
  description = "Full name of the ledger events topic (ARUS_PUBSUB_TOPIC)."
  value       = module.pubsub.topic_id
}

output "example_subscription" {
  description = "Ordered example consumer subscription with a dead-letter policy."
  value       = module.pubsub.example_subscription_id
}

output "dead_letter_subscription" {
  description = "Subscription that keeps dead-lettered events for inspection and replay."
  value       = module.pubsub.dead_letter_subscription_id
}

output "function_service_accounts" {
  description = "Map of function name to its own runtime service account."
  value       = module.iam.function_service_account_emails
}

output "scheduler_jobs" {
  description = "Map of job to its Cloud Scheduler job name."
  value       = module.scheduler.job_names
}

output "source_objects" {
  description = "Map of function name to the deployed source object <name>/<sha256>.zip in the source bucket."
  value       = module.functions.source_objects
}

output "source_bucket" {
  description = "Bucket holding the functions' source archives."
  value       = module.functions.source_bucket
}
