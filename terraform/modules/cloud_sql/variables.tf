variable "project_id" {
  description = "Google Cloud project that holds the instance."
  type        = string
}

variable "region" {
  description = "Region of the instance, for example us-central1."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name, for example \"arus-dev\"; the instance is <prefix>-ledger (placement main) or <prefix>-ledger-<placement>."
  type        = string
}

variable "placement" {
  description = "The placement (SPEC §9) this instance holds: main is <prefix>-ledger, any other <prefix>-ledger-<placement>."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,29}[a-z0-9])?$", var.placement))
    error_message = "placement is 1-31 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "database_version" {
  description = "PostgreSQL major version of the instance: 16 or later, where the owner cannot strip a user the Cloud SQL Admin API made (hence no runtime user is made here)."
  type        = string
  default     = "POSTGRES_17"

  validation {
    condition     = contains(["POSTGRES_16", "POSTGRES_17", "POSTGRES_18"], var.database_version)
    error_message = "database_version must be POSTGRES_16, POSTGRES_17 or POSTGRES_18."
  }
}

variable "tier" {
  description = "Machine tier: db-f1-micro (shared core, the smallest) for dev, a dedicated-core db-custom-* for prod."
  type        = string
}

variable "edition" {
  description = "Cloud SQL edition. ENTERPRISE is required for shared-core tiers such as db-f1-micro on recent PostgreSQL versions."
  type        = string
  default     = "ENTERPRISE"

  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.edition)
    error_message = "edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "availability_type" {
  description = "ZONAL (one zone) or REGIONAL (high availability with a standby in a second zone, twice the instance price)."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.availability_type)
    error_message = "availability_type must be ZONAL or REGIONAL."
  }
}

variable "disk_size_gb" {
  description = "Initial SSD size in GB; the disk grows automatically."
  type        = number
  default     = 10
}

variable "deletion_protection" {
  description = "Refuse deletion both in Terraform and at the Cloud SQL API."
  type        = bool
}

variable "backup_start_time" {
  description = "UTC start (HH:MM) of the daily backup window."
  type        = string
  default     = "03:00"
}

variable "retained_backups" {
  description = "Number of daily automated backups kept."
  type        = number

  validation {
    condition     = var.retained_backups >= 1 && var.retained_backups <= 365
    error_message = "retained_backups must be between 1 and 365."
  }
}

variable "transaction_log_retention_days" {
  description = "Days of write-ahead log kept for point-in-time recovery (1-7 on the ENTERPRISE edition)."
  type        = number

  validation {
    condition     = var.transaction_log_retention_days >= 1 && var.transaction_log_retention_days <= 7
    error_message = "transaction_log_retention_days must be between 1 and 7 on the ENTERPRISE edition."
  }
}

variable "maintenance_day" {
  description = "Day of the weekly maintenance window (1 = Monday ... 7 = Sunday)."
  type        = number
  default     = 7
}

variable "maintenance_hour_utc" {
  description = "UTC hour (0-23) of the weekly maintenance window; away from the 00:15 daily close."
  type        = number
  default     = 4
}

variable "database_name" {
  description = "Name of the ledger database (the functions' ARUS_DB_NAME)."
  type        = string
  default     = "arus"
}

variable "user_name" {
  description = "Built-in PostgreSQL user that owns the schema: migrations and administration (ledgers, keys)."
  type        = string
  default     = "arus"
}

variable "user_password" {
  description = "Password of the PostgreSQL user, from the secrets module (never typed by hand). Ephemeral: it reaches only the write-only password_wo."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "user_password_version" {
  description = "Version of the password; password_wo is sent again when it changes (rotation)."
  type        = number
}

variable "unique_name" {
  description = "Give the instance a random suffix (<prefix>-ledger-<6 hex digits>), so an environment that is destroyed can be re-created at once instead of waiting a week for the name (dev). false keeps <prefix>-ledger (prod)."
  type        = bool
}

variable "retain_backups_on_delete" {
  description = "Keep the instance's backups if the instance is deleted (true in prod)."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels on the instance (settings.user_labels): app and environment at least."
  type        = map(string)
  default     = {}
}
