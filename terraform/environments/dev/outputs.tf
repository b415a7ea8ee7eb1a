output "api_urls" {
  description = "HTTPS URLs of the public ledger API: post_entry (mutations) and query (reads)."
  value       = module.arus.api_urls
}

output "cloudsql_connection_name" {
  description = "Instance connection name of the first placement (main), for ARUS_CLOUDSQL_INSTANCE when running `arus migrate` or the Cloud SQL Auth Proxy on one instance."
  value       = module.arus.cloudsql_connection_name
}

output "cloudsql_instance_name" {
  description = "Name of the first placement's (main's) Cloud SQL instance (gcloud sql ... --instance); dev's carries a random suffix."
  value       = module.arus.cloudsql_instance_name
}

output "placements" {
  description = "Map of placement name to its engine, instance_name and connection_name (SPEC §9)."
  value       = module.arus.placements
}

output "arus_placements" {
  description = "ARUS_PLACEMENTS as the functions have it, for `arus migrate` and `arus app-user --placement` over every placement (connection names only)."
  value       = module.arus.arus_placements
}

output "database_name" {
  description = "Ledger database name (ARUS_DB_NAME), the same on every placement."
  value       = module.arus.database_name
}

output "database_logins" {
  description = "Map of role (api, relay, close) to its login: user, group, functions, password_secret (never the password) and served_version; the owner creates each with `arus app-user <user> --role <role> --password-env VAR`."
  value       = module.arus.database_logins
}

output "database_owner" {
  description = "The PostgreSQL user that owns the schema: migrations, `arus app-user`, ledgers and keys."
  value       = module.arus.database_owner
}

output "db_owner_password_secret" {
  description = "Full name of the secret holding the owner's password, for the operator only."
  value       = module.arus.db_owner_password_secret
}

output "events_topic" {
  description = "Full name of the ledger events topic (ARUS_PUBSUB_TOPIC)."
  value       = module.arus.events_topic
}

output "example_subscription" {
  description = "Ordered example consumer subscription with a dead-letter policy."
  value       = module.arus.example_subscription
}

output "dead_letter_subscription" {
  description = "Subscription that keeps dead-lettered events for inspection and replay."
  value       = module.arus.dead_letter_subscription
}

output "function_service_accounts" {
  description = "Map of function name to its own runtime service account."
  value       = module.arus.function_service_accounts
}

output "scheduler_jobs" {
  description = "Map of job to its Cloud Scheduler job name."
  value       = module.arus.scheduler_jobs
}

output "source_objects" {
  description = "Map of function name to the deployed source object <name>/<sha256>.zip in the source bucket."
  value       = module.arus.source_objects
}

output "source_bucket" {
  description = "Bucket holding the functions' source archives."
  value       = module.arus.source_bucket
}
