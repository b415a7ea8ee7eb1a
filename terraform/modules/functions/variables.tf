variable "project_id" {
  description = "Google Cloud project that holds the functions."
  type        = string
}

variable "region" {
  description = "Region of the functions, their source bucket and image repository."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name, for example \"arus-dev\"; functions are <prefix>-post-entry and so on."
  type        = string
}

variable "source_archives" {
  description = "Map of function name to the local path of its zip from `arus bundle` (build/bundles/<name>.zip), relative to the directory Terraform runs in."
  type        = map(string)

  validation {
    condition = (
      length(var.source_archives) == 4 &&
      length(setsubtract(["post_entry", "query", "relay", "daily_close"], keys(var.source_archives))) == 0
    )
    error_message = "source_archives needs exactly post_entry, query, relay and daily_close."
  }
}

variable "service_account_emails" {
  description = "Map of function name to the email of its own runtime service account (from the iam module)."
  type        = map(string)

  validation {
    condition     = length(distinct(values(var.service_account_emails))) == length(var.service_account_emails)
    error_message = "Every function needs its own service account: service_account_emails must not repeat an email."
  }
}

variable "build_service_account_id" {
  description = "Full resource name of the service account Cloud Build uses for the functions' builds."
  type        = string
}

variable "build_service_account_email" {
  description = "Email of that build service account (granted read on the sources and write on the image repository)."
  type        = string
}

variable "runtime" {
  description = "Cloud Run functions runtime; matches the Python the bundles are built and tested with."
  type        = string
  default     = "python311"
}

variable "memory" {
  description = "Memory of each function instance."
  type        = string
  default     = "512Mi"
}

variable "cpu" {
  description = "vCPUs of each function instance (one request at a time per instance)."
  type        = string
  default     = "1"
}

variable "min_instance_count" {
  description = "Map of function name to the instances kept warm (billed while idle)."
  type        = map(number)

  validation {
    condition     = length(setsubtract(["post_entry", "query", "relay", "daily_close"], keys(var.min_instance_count))) == 0
    error_message = "min_instance_count needs a value for post_entry, query, relay and daily_close."
  }
}

variable "max_instance_count" {
  description = "Map of function name to its instance ceiling; together with the pool size it bounds the database connections."
  type        = map(number)

  validation {
    condition     = length(setsubtract(["post_entry", "query", "relay", "daily_close"], keys(var.max_instance_count))) == 0
    error_message = "max_instance_count needs a value for post_entry, query, relay and daily_close."
  }
}

variable "placements" {
  description = "The placements (SPEC §9), in order, each { name, target }: target is the instance connection name <project>:<region>:<instance> of its Cloud SQL instance. Every function gets all of them as ARUS_PLACEMENTS."
  type = list(object({
    name   = string
    target = string
  }))

  validation {
    condition     = length(var.placements) >= 1 && length(distinct([for placement in var.placements : placement.name])) == length(var.placements)
    error_message = "placements needs at least one placement and must not repeat a name."
  }

  validation {
    # ARUS_PLACEMENTS is name=target,...: neither may hold a comma or an equals sign.
    condition = alltrue([
      for placement in var.placements :
      can(regex("^[a-z][a-z0-9-]{0,30}$", placement.name)) && length(regexall("[,=]", placement.target)) == 0
    ])
    error_message = "A placement's name is [a-z][a-z0-9-]{0,30}, and its target holds no comma or equals sign."
  }
}

variable "db_name" {
  description = "Ledger database name (ARUS_DB_NAME)."
  type        = string
}

variable "db_logins" {
  description = "Map of database role (api, relay, close) to its login: user (ARUS_DB_USER), password_secret_id (the short name of its password secret) and password_secret_version (the version its functions read, a number so that a rotation rolls a new revision)."
  type = map(object({
    user                    = string
    password_secret_id      = string
    password_secret_version = string
  }))

  validation {
    condition     = length(distinct([for login in values(var.db_logins) : login.user])) == length(var.db_logins)
    error_message = "Every role needs its own login: db_logins must not repeat a user."
  }
}

variable "function_db_roles" {
  description = "Map of function name to the database role it connects as (a key of db_logins)."
  type        = map(string)

  validation {
    condition = (
      length(var.function_db_roles) == 4 &&
      length(setsubtract(["post_entry", "query", "relay", "daily_close"], keys(var.function_db_roles))) == 0 &&
      length(setsubtract(values(var.function_db_roles), keys(var.db_logins))) == 0
    )
    error_message = "function_db_roles maps exactly post_entry, query, relay and daily_close, each to a role of db_logins."
  }
}

variable "db_ip_type" {
  description = "Which instance IP the connector dials (ARUS_DB_IP_TYPE): public, private or psc."
  type        = string
  default     = "public"

  validation {
    condition     = contains(["public", "private", "psc"], var.db_ip_type)
    error_message = "db_ip_type must be public, private or psc."
  }
}

variable "db_pool_size" {
  description = "SQLAlchemy pool size per instance (ARUS_DB_POOL_SIZE). One suffices: an instance serves one request at a time and every request path holds one connection at a time."
  type        = number
  default     = 1
}

variable "db_max_overflow" {
  description = "SQLAlchemy pool overflow per instance (ARUS_DB_MAX_OVERFLOW)."
  type        = number
  default     = 0
}

variable "db_connection_limit" {
  description = "Connections all function instances of two revisions together may hold (a deploy runs the old and the new one side by side): the tier's max_connections less what PostgreSQL reserves and operators need. Checked at plan time."
  type        = number
}

variable "events_topic_id" {
  description = "Full name of the events topic (ARUS_PUBSUB_TOPIC)."
  type        = string
}

variable "relay_time_budget_s" {
  description = "Seconds one relay run may spend draining (ARUS_RELAY_TIME_BUDGET_S); below the relay's timeout and the one-minute schedule."
  type        = number
  default     = 50
}

variable "force_destroy_sources" {
  description = "Let `terraform destroy` delete the source bucket with its archives (dev only)."
  type        = bool
  default     = false
}

variable "noncurrent_source_retention_days" {
  description = "Days a replaced or deleted source archive is kept as a noncurrent object version."
  type        = number
  default     = 30
}

variable "images_kept_per_function" {
  description = "Most recent container images kept in the repository (older ones are deleted after 30 days)."
  type        = number
  default     = 10
}

variable "iam_propagation_wait" {
  description = "How long to wait after the build account's grants are made before the first build (IAM changes take seconds to minutes to reach every service)."
  type        = string
  default     = "120s"
}
