# The database password: generated here, stored once in Secret Manager, and read by the
# functions only through `secret_environment_variables` (never a plain environment variable).
#
# Rotation: change var.password_rotation_id. Terraform then generates a new password, adds a
# new secret version (the new one exists before the old one is disabled), updates the Cloud SQL
# user, and the functions roll to a new revision pinned to the new version number.

resource "random_password" "db" {
  length  = 32
  special = true
  # URL-safe specials only, so an operator can put the password in ARUS_DATABASE_URL for a
  # one-off migration through the Cloud SQL Auth Proxy without percent-encoding it.
  override_special = "-_.~"
  min_lower        = 4
  min_upper        = 4
  min_numeric      = 4

  keepers = {
    rotation_id = var.password_rotation_id
  }
}

resource "google_secret_manager_secret" "db_password" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-db-password"

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
  secret      = google_secret_manager_secret.db_password.id
  secret_data = random_password.db.result

  # A rotated-out version is disabled, not destroyed: it can be re-enabled during an incident.
  deletion_policy = "DISABLE"

  lifecycle {
    create_before_destroy = true
  }
}
