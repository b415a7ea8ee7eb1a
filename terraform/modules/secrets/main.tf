# One database user's password: generated here and stored once in Secret Manager. The stack
# uses this module twice: the owner's password (migrations and administration, read by the
# operator) and the application user's (read by the functions only through
# `secret_environment_variables`, never a plain environment variable).
#
# The password is ephemeral (Terraform >= 1.11): generated during the run and written only
# through write-only arguments (the secret version's secret_data_wo here, the Cloud SQL user's
# password_wo), so it is in neither the plan nor the state.
#
# Rotation: increase var.password_version. Terraform then generates a new password, adds a new
# secret version (the new one exists before the old one is disabled), sends the new password
# to the Cloud SQL user, and the functions roll to a new revision pinned to the new version.

ephemeral "random_password" "db" {
  length  = 32
  special = true
  # URL-safe specials only, so an operator can put the password in ARUS_DATABASE_URL for a
  # one-off migration through the Cloud SQL Auth Proxy without percent-encoding it.
  override_special = "-_.~"
  min_lower        = 4
  min_upper        = 4
  min_numeric      = 4
}

resource "google_secret_manager_secret" "db_password" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-${var.secret_name}"

  # One replica in the database's region: the secret stays where the data is.
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "db_password" {
  secret = google_secret_manager_secret.db_password.id
  # Write-only: sent when the version number changes, never stored in state.
  secret_data_wo         = ephemeral.random_password.db.result
  secret_data_wo_version = var.password_version

  # A rotated-out version is disabled, not destroyed: it can be re-enabled during an incident.
  deletion_policy = "DISABLE"

  lifecycle {
    create_before_destroy = true
  }
}
