output "secret_id" {
  description = "Short name of the database password secret (what secret_environment_variables takes)."
  value       = google_secret_manager_secret.db_password.secret_id
}

output "secret_name" {
  description = "Full resource name of the secret, projects/<project>/secrets/<id> (what IAM bindings take)."
  value       = google_secret_manager_secret.db_password.id
}

output "secret_version" {
  description = "Number of the newest version: the password just generated."
  value       = google_secret_manager_secret_version.db_password.version
}

output "served_version" {
  description = "Number of the version the secret's readers are pinned to: served_version while it lags password_version (a login mid-rotation), else the newest. Always depends on the version resource, so no reader is pointed at a version before it exists."
  value = (
    var.served_version == null || var.served_version == var.password_version
    ? google_secret_manager_secret_version.db_password.version
    : tostring(var.served_version)
  )
}

output "password" {
  description = "The generated database password, for the owner's Cloud SQL user's write-only argument only. Ephemeral: never in plan or state."
  value       = ephemeral.random_password.db.result
  ephemeral   = true
}

output "password_version" {
  description = "The password's version, read back from the stored secret version: a user's write-only password (password_wo_version) that takes it is sent only after the secret holds the same password."
  value       = google_secret_manager_secret_version.db_password.secret_data_wo_version
}
