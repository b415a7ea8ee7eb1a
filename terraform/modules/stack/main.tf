# One Arus deployment: the seven modules wired together. environments/dev and environments/prod
# each call this once; everything that differs between them arrives as a variable.

locals {
  name_prefix = "arus-${var.environment}"
  labels      = { app = "arus", environment = var.environment }

  function_names = ["post_entry", "query", "relay", "daily_close"]

  # The placements (SPEC §9) by name, one Cloud SQL instance each (module.cloud_sql["<name>"]).
  placements = { for placement in var.placements : placement.name => placement }

  # One database login per job (SPEC §3.6). Each role's functions connect as its login
  # (ARUS_DB_USER) and can read its password secret and no other. The logins are not Cloud SQL
  # users: the owner creates each in SQL, a member of its group role only, with
  # `arus app-user USER --role ROLE --password-env VAR` and the password from its secret
  # (docs/runbook-cloud-run.md, step 4).
  #
  # With several placements a login is the same user with the same password secret on every
  # placement (the settings give a function one ARUS_DB_USER and one ARUS_DB_PASSWORD for all
  # its placements): the owner runs `arus app-user ... --placement P` once per placement, and
  # a rotation sets the new password on every placement before `served` moves.
  db_logins = {
    api   = { user = "arus_api_login", group = "arus_app", functions = ["post_entry", "query"] }
    relay = { user = "arus_relay_login", group = "arus_relay", functions = ["relay"] }
    close = { user = "arus_close_login", group = "arus_close", functions = ["daily_close"] }
  }

  # Function name -> its role: the same facts as db_logins, read the other way.
  function_db_roles = merge([
    for role, login in local.db_logins : { for name in login.functions : name => role }
  ]...)

  # Every API the stack uses. Service Usage and Resource Manager must already be on to enable
  # these (the runbook's first step turns those two on).
  services = toset([
    "iam.googleapis.com",
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "storage.googleapis.com",
    "sqladmin.googleapis.com",
    "secretmanager.googleapis.com",
    "pubsub.googleapis.com",
    "cloudscheduler.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "cloudtrace.googleapis.com",
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.services

  project = var.project_id
  service = each.value
  # dev and prod may share a project: destroying one must not turn an API off for the other.
  disable_on_destroy = false
}

# Enabling an API returns before every Google service accepts calls for it (a first apply then
# fails on "API has not been used in project ... or it is disabled"). Every module waits for this.
resource "time_sleep" "apis_enabled" {
  depends_on = [google_project_service.enabled]

  create_duration = "60s"
  triggers = {
    services = join(",", sort(local.services))
  }
}

# The project's number names its Pub/Sub service agent. Read at plan time: no depends_on, so it
# is never deferred (the project and Resource Manager exist before Terraform runs).
data "google_project" "this" {
  project_id = var.project_id
}

# The owner's password: migrations and administration, read by the operator, never a function.
module "secrets" {
  source     = "../secrets"
  depends_on = [time_sleep.apis_enabled]

  project_id       = var.project_id
  region           = var.region
  name_prefix      = local.name_prefix
  password_version = var.db_owner_password_version
}

# Each login's password, in its own secret (arus-<env>-db-<role>-password). Its functions read
# version `served`, which moves to `generated` only once the owner has set the new password in
# the database (docs/runbook-cloud-run.md, "Rotate a database password").
module "db_login_secrets" {
  source     = "../secrets"
  for_each   = local.db_logins
  depends_on = [time_sleep.apis_enabled]

  project_id       = var.project_id
  region           = var.region
  name_prefix      = local.name_prefix
  secret_name      = "db-${each.key}-password"
  password_version = var.db_login_password_versions[each.key].generated
  served_version   = var.db_login_password_versions[each.key].served
}

# Deployments made before one login per job kept the single application user's password here.
# Forget that secret without deleting it: revisions still reading it may start instances while
# the functions move to their logins; the runbook deletes it after the shared user
# ("Upgrading to one login per job").
removed {
  from = module.app_secrets

  lifecycle {
    destroy = false
  }
}

# One Cloud SQL instance per placement, each with its database and the owner's user (the same
# owner and password on every placement: one secret, module.secrets). The placement `main`
# keeps the instance name the single instance always had.
module "cloud_sql" {
  source     = "../cloud_sql"
  for_each   = local.placements
  depends_on = [time_sleep.apis_enabled]

  project_id                     = var.project_id
  region                         = var.region
  name_prefix                    = local.name_prefix
  placement                      = each.key
  unique_name                    = var.database.unique_name
  database_version               = var.database_version
  tier                           = var.database.tier
  edition                        = var.database.edition
  availability_type              = var.database.availability_type
  disk_size_gb                   = var.database.disk_size_gb
  deletion_protection            = var.database.deletion_protection
  retained_backups               = var.database.retained_backups
  transaction_log_retention_days = var.database.transaction_log_retention_days
  user_password                  = module.secrets.password
  user_password_version          = module.secrets.password_version
  retain_backups_on_delete       = var.database.retain_backups_on_delete
  labels                         = local.labels
}

# Deployments made before placements had the one instance at module.cloud_sql: it is the
# placement main, in place (no instance is replaced).
moved {
  from = module.cloud_sql
  to   = module.cloud_sql["main"]
}

module "pubsub" {
  source     = "../pubsub"
  depends_on = [time_sleep.apis_enabled]

  project_id              = var.project_id
  project_number          = data.google_project.this.number
  region                  = var.region
  topic_message_retention = var.topic_message_retention
  # dev and prod may share a project: every topic and subscription name carries the prefix.
  topic_name = "${local.name_prefix}-ledger-events"
}

module "iam" {
  source     = "../iam"
  depends_on = [time_sleep.apis_enabled]

  project_id          = var.project_id
  name_prefix         = local.name_prefix
  function_names      = local.function_names
  publisher_functions = ["relay"]
  # Every function may connect to every placement's instance (and to no other instance).
  sql_instance_names = [for placement in var.placements : module.cloud_sql[placement.name].instance_name]
  function_db_password_secrets = {
    for name, role in local.function_db_roles : name => module.db_login_secrets[role].secret_name
  }
  events_topic_id = module.pubsub.topic_id
}

# The functions' accounts must hold their grants (Cloud SQL client, their secret, the topic)
# before a revision starts with them; IAM changes take seconds to minutes to propagate.
resource "time_sleep" "iam_propagated" {
  depends_on = [module.iam]

  create_duration = "120s"

  triggers = {
    grants = sha256(jsonencode(module.iam.grant_ids))
  }
}

module "functions" {
  source = "../functions"

  project_id                  = var.project_id
  region                      = var.region
  name_prefix                 = local.name_prefix
  source_archives             = var.source_archives
  service_account_emails      = module.iam.function_service_account_emails
  build_service_account_id    = module.iam.build_service_account_id
  build_service_account_email = module.iam.build_service_account_email
  min_instance_count          = var.min_instance_count
  max_instance_count          = var.max_instance_count
  # Every placement's instance, in order: each function's ARUS_PLACEMENTS.
  placements = [
    for placement in var.placements : {
      name   = placement.name
      target = module.cloud_sql[placement.name].connection_name
    }
  ]
  # One ARUS_DB_NAME for every placement: each instance's database has the same name.
  db_name             = one(distinct([for sql in module.cloud_sql : sql.database_name]))
  db_ip_type          = "public"
  db_pool_size        = var.db_pool_size
  db_max_overflow     = var.db_max_overflow
  db_connection_limit = var.database.max_connections - var.database.reserved_connections
  db_logins = {
    for role, login in local.db_logins : role => {
      user                    = login.user
      password_secret_id      = module.db_login_secrets[role].secret_id
      password_secret_version = module.db_login_secrets[role].served_version
    }
  }
  function_db_roles     = local.function_db_roles
  events_topic_id       = module.pubsub.topic_id
  force_destroy_sources = var.force_destroy_sources

  # A function must not start before its account can reach the database, its secret and the
  # topic, nor build before the build account has its grants.
  depends_on = [time_sleep.iam_propagated, time_sleep.apis_enabled]
}

module "scheduler" {
  source     = "../scheduler"
  depends_on = [time_sleep.apis_enabled]

  project_id                      = var.project_id
  region                          = var.region
  name_prefix                     = local.name_prefix
  scheduler_service_account_email = module.iam.scheduler_service_account_email
  paused                          = var.scheduler_paused

  targets = {
    for name in module.functions.scheduled_functions : name => {
      service_name = module.functions.service_names[name]
      uri          = module.functions.service_uris[name]
    }
  }
}

# The log-based metrics (outbox lag, entries written) and the alerts on them and on the API's
# 5xx answers (docs/operations.md, "Metrics and alerts").
module "monitoring" {
  source     = "../monitoring"
  depends_on = [time_sleep.apis_enabled]

  project_id    = var.project_id
  name_prefix   = local.name_prefix
  service_names = module.functions.service_names
  alerts        = var.alerts
}
