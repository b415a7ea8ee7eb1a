output "secret_id" {
  description = "Short name of the database password secret (what secret_environment_variables takes)."
  value       = google_secret_manager_secret.db_password.secret_id
}

output "secret_name" {
  description = "Full resource name of the secret, projects/<project>/secrets/<id> (what IAM bindings take)."
  value       = google_secret_manager_secret.db_password.id
}

output "secret_version" {
  description = "Version number of the current password; the functions pin it so a rotation rolls a new revision."
  value       = google_secret_manager_secret_version.db_password.version
}

output "password" {
  description = "The generated database password, for the Cloud SQL user's write-only argument only. Ephemeral: never in plan or state."
  value       = ephemeral.random_password.db.result
  ephemeral   = true
}

output "password_version" {
  description = "The password's version: a write-only argument is sent again when it changes."
  value       = var.password_version
}
