output "instance_name" {
  description = "Name of the Cloud SQL instance."
  value       = google_sql_database_instance.ledger.name
}

output "connection_name" {
  description = "Instance connection name <project>:<region>:<instance>, the functions' ARUS_CLOUDSQL_INSTANCE."
  value       = google_sql_database_instance.ledger.connection_name
}

output "database_name" {
  description = "Name of the ledger database (ARUS_DB_NAME)."
  value       = google_sql_database.ledger.name
}

output "user_name" {
  description = "The PostgreSQL user that owns the schema (migrations and administration); no function connects as it."
  value       = google_sql_user.ledger.name
}
