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

output "cloudsql_instance_name" {
  description = "Name of the Cloud SQL instance (gcloud sql ... --instance); dev's carries a random suffix."
  value       = module.cloud_sql.instance_name
}

output "database_name" {
  description = "Ledger database name (ARUS_DB_NAME)."
  value       = module.cloud_sql.database_name
}

output "database_logins" {
  description = "Map of role (api, relay, close) to its login: user (ARUS_DB_USER of its functions), group (the NOLOGIN role it is a member of), functions, password_secret (full name of its password secret, never the password) and served_version (the secret version its functions read). The owner creates each with `arus app-user <user> --role <role> --password-env VAR`."
  value = {
    for role, login in local.db_logins : role => {
      user            = login.user
      group           = login.group
      functions       = login.functions
      password_secret = module.db_login_secrets[role].secret_name
      served_version  = module.db_login_secrets[role].served_version
    }
  }
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
