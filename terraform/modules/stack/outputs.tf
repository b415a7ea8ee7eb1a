output "api_urls" {
  description = "HTTPS URLs of the public ledger API: post_entry (mutations) and query (reads)."
  value = {
    post_entry = module.functions.function_urls["post_entry"]
    query      = module.functions.function_urls["query"]
  }
}

output "cloudsql_connection_name" {
  description = "Instance connection name of the first placement (main), for ARUS_CLOUDSQL_INSTANCE when running `arus migrate` or the Cloud SQL Auth Proxy on one instance; every placement's is in `placements`."
  value       = module.cloud_sql[var.placements[0].name].connection_name
}

output "cloudsql_instance_name" {
  description = "Name of the first placement's (main's) Cloud SQL instance (gcloud sql ... --instance); dev's carries a random suffix. Every placement's is in `placements`."
  value       = module.cloud_sql[var.placements[0].name].instance_name
}

output "placements" {
  description = "Map of placement name to its engine, instance_name (gcloud sql ... --instance) and connection_name (<project>:<region>:<instance>): one Cloud SQL instance per placement (SPEC §9)."
  value = {
    for name, sql in module.cloud_sql : name => {
      engine          = local.placements[name].engine
      instance_name   = sql.instance_name
      connection_name = sql.connection_name
    }
  }
}

output "arus_placements" {
  description = "ARUS_PLACEMENTS as the functions have it (name=<instance connection name>, comma separated, in order): what an operator exports to run `arus migrate` or `arus app-user --placement` over every placement. Connection names only, never a password."
  value       = module.functions.arus_placements
}

output "database_name" {
  description = "Ledger database name (ARUS_DB_NAME), the same on every placement."
  value       = one(distinct([for sql in module.cloud_sql : sql.database_name]))
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
  description = "The PostgreSQL user that owns the schema on every placement: `arus migrate`, `arus app-user`, ledgers and keys."
  value       = one(distinct([for sql in module.cloud_sql : sql.user_name]))
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
