# One database user's password: generated here and stored in Secret Manager. The stack uses this
# module for the owner (migrations and administration, read by the operator) and once per
# runtime login (api, relay, close: SPEC §3.6), each read only by its own functions, through
# `secret_environment_variables`, never a plain environment variable.
#
# The password is ephemeral (Terraform >= 1.11): generated during the run and written only
# through write-only arguments (the secret version's secret_data_wo here, the owner's Cloud SQL
# user's password_wo), so it is in neither the plan nor the state. A new value is generated in
# every run; only a resource whose *_wo_version changed in that run receives it.
#
# Rotation: raise var.password_version (in the environment's password_versions.auto.tfvars,
# never with -var: the next apply without it would undo it). Terraform adds a new secret version.
# - The owner (served_version = null): its Cloud SQL user receives the same password in the same
#   run, strictly after the secret version is stored (output password_version is read from that
#   version), and the replaced version is disabled.
# - A login (served_version set): the owner sets the password in the database with `arus
#   app-user NAME --role R --password-env VAR`, outside Terraform, so its functions stay pinned to
#   served_version, and the replaced version stays enabled (abandoned, not disabled), until
#   served_version is raised to match (docs/runbook-cloud-run.md, "Rotate a database password").

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

  # A replaced version is never destroyed. The owner's is disabled (its user has the new
  # password once this run ends; `gcloud secrets versions enable` brings it back during an
  # incident); a login's is left enabled, because its functions read it until served_version
  # moves on.
  deletion_policy = var.served_version == null ? "DISABLE" : "ABANDON"

  lifecycle {
    create_before_destroy = true

    # A login's functions are pinned by number (served_version): that number must be the
    # password_version that generated it, which holds while only Terraform adds versions.
    postcondition {
      condition     = var.served_version == null ? true : self.version == tostring(var.password_version)
      error_message = "The newest version of ${google_secret_manager_secret.db_password.secret_id} is not number ${var.password_version} (password_version): a version was added outside Terraform, so served_version would name the wrong password. Raise password_version to the secret's newest version number plus one."
    }
  }
}
