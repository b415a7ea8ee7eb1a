# What the calling environment decides. No defaults here: each environment states its own, in
# its variables.tf (what an operator may override) or its locals (what makes it dev or prod).

variable "project_id" {
  description = "Google Cloud project to deploy into (must already exist, with billing and the APIs of docs/runbook-cloud-run.md enabled)."
  type        = string
}

variable "region" {
  description = "Region for every regional resource; the cost table in docs/cost.md assumes us-central1."
  type        = string
}

variable "environment" {
  description = "Environment name (dev, prod); every resource name starts with arus-<environment>."
  type        = string
}

variable "database_version" {
  description = "PostgreSQL major version of the Cloud SQL instance (POSTGRES_16, POSTGRES_17 or POSTGRES_18)."
  type        = string
}

variable "database" {
  description = "The Cloud SQL instance: sizing and protection (tier, edition, availability_type, disk_size_gb, deletion_protection, retain_backups_on_delete, retained_backups, transaction_log_retention_days), unique_name (a random suffix, so a destroyed instance can be re-created at once), and its connections: max_connections (the tier's default) and reserved_connections (PostgreSQL's superuser reserve and the operator's sessions), whose difference bounds the functions of two revisions together."
  type = object({
    tier                           = string
    edition                        = string
    availability_type              = string
    disk_size_gb                   = number
    deletion_protection            = bool
    retain_backups_on_delete       = bool
    retained_backups               = number
    transaction_log_retention_days = number
    unique_name                    = bool
    max_connections                = number
    reserved_connections           = number
  })

  validation {
    # Cloud SQL keeps superuser_reserved_connections = 3 that no Arus login can use; one more
    # at least for the operator's `arus migrate` or `arus app-user`.
    condition     = var.database.reserved_connections >= 4 && var.database.reserved_connections < var.database.max_connections
    error_message = "reserved_connections must cover PostgreSQL's 3 superuser slots and an operator session (>= 4) and be below max_connections."
  }
}

variable "placements" {
  description = "The placements (SPEC §9): the PostgreSQL primaries ledgers are placed on, in order, each { name, engine }. Each gets its own Cloud SQL instance (sized and protected by `database`), database and owner user, and every function reaches every one (ARUS_PLACEMENTS). name is the one a ledger's keys carry (`main` keeps the instance the single-instance deployment always had, and keys without a placement); engine is \"cloudsql\" (AlloyDB placements are not created by this Terraform yet: terraform/README.md)."
  type = list(object({
    name   = string
    engine = optional(string, "cloudsql")
  }))

  validation {
    condition     = length(var.placements) >= 1
    error_message = "placements needs at least one placement (main, for a single instance)."
  }

  validation {
    condition     = length(distinct([for placement in var.placements : placement.name])) == length(var.placements)
    error_message = "placements must not repeat a name: a key names its placement."
  }

  validation {
    # ARUS_PLACEMENTS' names ([a-z][a-z0-9-]{0,30}), and no trailing hyphen: the name ends an
    # instance name (<prefix>-ledger-<name>).
    condition     = alltrue([for placement in var.placements : can(regex("^[a-z]([a-z0-9-]{0,29}[a-z0-9])?$", placement.name))])
    error_message = "A placement's name is 1-31 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }

  validation {
    condition     = alltrue([for placement in var.placements : placement.engine == "cloudsql"])
    error_message = "engine must be \"cloudsql\": this Terraform does not create AlloyDB placements yet (terraform/README.md, \"Placements\")."
  }
}

variable "source_archives" {
  description = "Map of function name to the zip `arus bundle` built, relative to the directory Terraform runs in."
  type        = map(string)
}

variable "min_instance_count" {
  description = "Map of function name to the instances kept warm (billed while idle)."
  type        = map(number)
}

variable "max_instance_count" {
  description = "Map of function name to its instance ceiling; together with the pool size it bounds the database connections."
  type        = map(number)
}

variable "db_pool_size" {
  description = "SQLAlchemy pool size per function instance (ARUS_DB_POOL_SIZE)."
  type        = number
}

variable "db_max_overflow" {
  description = "SQLAlchemy pool overflow per function instance (ARUS_DB_MAX_OVERFLOW)."
  type        = number
}

variable "topic_message_retention" {
  description = "How long the events topic keeps messages, for example \"86400s\"."
  type        = string
}

variable "force_destroy_sources" {
  description = "Let `terraform destroy` delete the source bucket with its archives (dev only)."
  type        = bool
}

variable "db_owner_password_version" {
  description = "The owner's password version; raising it rotates that password (docs/runbook-cloud-run.md, \"Rotate a database password\"). Kept in the environment's password_versions.auto.tfvars."
  type        = number
}

variable "db_login_password_versions" {
  description = "Map of role (api, relay, close) to its login's password versions: generated (raising it adds a new password to the login's secret) and served (the version the role's functions read: raise it to generated once `arus app-user` has set that password in the database). Kept in the environment's password_versions.auto.tfvars."
  type = map(object({
    generated = number
    served    = number
  }))

  validation {
    condition     = length(var.db_login_password_versions) == 3 && length(setsubtract(["api", "relay", "close"], keys(var.db_login_password_versions))) == 0
    error_message = "db_login_password_versions needs exactly api, relay and close."
  }

  validation {
    condition = alltrue([
      for versions in values(var.db_login_password_versions) :
      versions.served <= versions.generated && versions.served >= max(1, versions.generated - 1)
    ])
    error_message = "served is generated, or generated - 1 while the new password is not yet set in the database."
  }
}

variable "scheduler_paused" {
  description = "Keep the relay and daily close jobs paused, for example during a migration."
  type        = bool
}

variable "alerts" {
  description = "The alerts of modules/monitoring: outbox_lag_threshold_s, api_5xx_ratio and notification_channels (ids of existing notification channels; empty: incidents show in the console only)."
  type = object({
    outbox_lag_threshold_s = number
    api_5xx_ratio          = number
    notification_channels  = list(string)
  })
}
