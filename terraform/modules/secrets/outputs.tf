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
  description = "The generated database password, for the Cloud SQL user only. Sensitive: it also lives in Terraform state, which must sit in a restricted bucket."
  value       = random_password.db.result
  sensitive   = true
}
