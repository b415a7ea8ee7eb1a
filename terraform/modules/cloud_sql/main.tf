# Cloud SQL for PostgreSQL: one placement's store (the stack calls this once per placement).
#
# Connections come only through Cloud SQL connectors (the Python connector in the functions,
# the Auth Proxy for an operator): connector_enforcement = REQUIRED, no authorized networks,
# TLS with a client certificate required. The instance has a public IP because the connectors
# need no VPC to reach it; that IP accepts no direct connections (see the CKV_GCP_60 skip).

# A Cloud SQL instance name cannot be used again for up to a week after the instance is deleted.
# An environment that is torn down and re-created (dev) gets a random suffix, drawn again when
# `terraform destroy` removes it, so the next apply can create the instance at once; prod keeps
# its plain name (renaming would replace the instance).
resource "random_id" "instance_suffix" {
  count       = var.unique_name ? 1 : 0
  byte_length = 3
}

# One instance per placement (SPEC §9): the placement main is <prefix>-ledger, the name the single
# instance always had; another is <prefix>-ledger-<placement>.
locals {
  base_name = var.placement == "main" ? "${var.name_prefix}-ledger" : "${var.name_prefix}-ledger-${var.placement}"
  instance_name = join("-", concat(
    [local.base_name],
    [for suffix in random_id.instance_suffix : suffix.hex],
  ))
}

resource "google_sql_database_instance" "ledger" {
  #checkov:skip=CKV_GCP_108:Every connection arrives through the Cloud SQL connectors' server-side proxy, so the client host is always the same local address; log_hostname would add a reverse DNS lookup to each connection and record nothing. The connecting IAM principal is in Cloud Audit Logs.
  #checkov:skip=CKV2_GCP_13:log_duration logs one line for every statement the ledger runs (several per posting), which would dominate Cloud Logging volume and cost; Query Insights gives per-query latency, and log_min_duration_statement can be lowered during an investigation.
  #checkov:skip=CKV_GCP_79:POSTGRES_17 is the newest major version the project has adopted on Cloud SQL (the default of var.database_version); a major upgrade is a planned in-place upgrade after the migrations have run against it, not a configuration drift.
  #checkov:skip=CKV_GCP_60:The public IP is what the Cloud SQL connectors dial; with no authorized networks and connector_enforcement = REQUIRED it accepts only IAM-authorized, mTLS connector sessions. Private IP would need a VPC, private services access and Direct VPC egress on every function, which this low-traffic deployment does not carry (docs/runbook-cloud-run.md).
  project          = var.project_id
  region           = var.region
  name             = local.instance_name
  database_version = var.database_version

  # Terraform-level guard (refuses `terraform destroy`) ...
  deletion_protection = var.deletion_protection

  lifecycle {
    # disk_autoresize grows the disk; a grown disk_size must not plan a replacement.
    ignore_changes = [settings[0].disk_size]
  }

  settings {
    tier              = var.tier
    edition           = var.edition
    availability_type = var.availability_type
    disk_type         = "PD_SSD"
    disk_size         = var.disk_size_gb
    disk_autoresize   = true

    # ... and API-level guard (refuses deletion from the console or gcloud as well).
    deletion_protection_enabled = var.deletion_protection

    # Backups outlive the instance if it is ever deleted (prod); automated ones by retention.
    retain_backups_on_delete = var.retain_backups_on_delete

    user_labels = var.labels

    connector_enforcement = "REQUIRED"

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = var.backup_start_time
      transaction_log_retention_days = var.transaction_log_retention_days

      backup_retention_settings {
        retained_backups = var.retained_backups
        retention_unit   = "COUNT"
      }
    }

    # Only TLS with a client certificate: the connectors (Python connector, Auth Proxy) always
    # present the ephemeral certificate they obtain through IAM, so nothing else can connect.
    ip_configuration {
      ipv4_enabled = true
      ssl_mode     = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    maintenance_window {
      day          = var.maintenance_day
      hour         = var.maintenance_hour_utc
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    # Logging flags of the CIS PostgreSQL benchmark (checkov CKV_GCP_51-57, 109-111).
    # log_min_duration_statement = -1 keeps statement text (and its parameters: amounts,
    # metadata) out of the logs; Query Insights reports per-query latency instead.
    # pgaudit records DDL and role changes only: the ledger's own journal is the audit of writes,
    # and logging every write would double the log volume.
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "warning"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }
}

resource "google_sql_database" "ledger" {
  project  = var.project_id
  instance = google_sql_database_instance.ledger.name
  name     = var.database_name

  # The database goes with the instance; Terraform never drops a ledger database on its own.
  deletion_policy = "ABANDON"
}

# The owner: migrations, `arus app-user`, ledgers and keys; never a function. Its password_wo_version
# is read from the stored secret version, so the password reaches the user only after the secret
# holds it (a failed run can leave the secret ahead of the user, never the user ahead of it).
resource "google_sql_user" "ledger" {
  project  = var.project_id
  instance = google_sql_database_instance.ledger.name
  name     = var.user_name
  # Write-only (provider >= 6.23): the password is sent when its version changes and is never
  # stored in state.
  password_wo         = var.user_password
  password_wo_version = var.user_password_version

  # PostgreSQL refuses to drop a role that owns objects; leave it to the instance's deletion.
  deletion_policy = "ABANDON"
}

# The runtime logins (api, relay, close: SPEC §3.6) are not Cloud SQL users. On PostgreSQL 16
# and later (every version var.database_version admits) a user the Admin API creates is a member
# of cloudsqlsuperuser that the owner cannot strip: revoking a membership, or altering a role
# at all, needs ADMIN OPTION on it, which the API's own administrator holds and the owner does
# not. So the owner creates each login in SQL, stripped from the start, with `arus app-user NAME
# --role R --password-env VAR` and the password from that login's secret (runbook, step 4).
#
# Deployments made before one login per job had the application's user here, made through the
# Admin API: forget it without touching the database (its deletion_policy was ABANDON anyway);
# the runbook's upgrade deletes it with `gcloud sql users delete` once no function uses it.
removed {
  from = google_sql_user.app

  lifecycle {
    destroy = false
  }
}
