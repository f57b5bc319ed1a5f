variable "project_id" {
  description = "GCP project of the secrets."
  type        = string
}

variable "region" {
  description = "Region the secrets are replicated to (user-managed replication keeps data in-region)."
  type        = string
}

variable "logfire_secret_id" {
  description = "Secret id of the Logfire token; passed to the app as LOGFIRE_SECRET_NAME."
  type        = string
  default     = "logfire-token"
}

variable "pg_url_secret_id" {
  description = "Secret id holding DAGSTER_PG_URL."
  type        = string
  default     = "dagster-pg-url"
}

variable "dagster_pg_url" {
  description = "postgresql:// URL of the Dagster instance database (from the cloud_sql module)."
  type        = string
  sensitive   = true
}

variable "accessor_members" {
  description = "IAM members granted roles/secretmanager.secretAccessor on both secrets, keyed by a static label (e.g. { daemon = \"serviceAccount:...\" }) so for_each keys are known at plan time."
  type        = map(string)
  default     = {}
}

variable "labels" {
  description = "Labels applied to the secrets."
  type        = map(string)
  default     = {}
}
