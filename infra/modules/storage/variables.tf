variable "project_id" {
  description = "GCP project of the bucket."
  type        = string
}

variable "bucket_name" {
  description = "Globally unique name of the lake bucket."
  type        = string
}

variable "location" {
  description = "Bucket location (a region, same as Cloud Run, to avoid egress)."
  type        = string
}

variable "lake_prefix" {
  description = "Object prefix of the lake inside the bucket; LAKE_URI = gs://<bucket>/<lake_prefix>."
  type        = string
  default     = "lake"

  validation {
    condition     = length(var.lake_prefix) > 0 && !startswith(var.lake_prefix, "/") && !endswith(var.lake_prefix, "/")
    error_message = "lake_prefix must be non-empty without a leading or trailing slash."
  }
}

variable "landing_retention_days" {
  description = "Days after its merge a landing batch (<lake_prefix>/landing/_merged/) is deleted; bounds the replay window. Unmerged batches never expire."
  type        = number
  default     = 30

  validation {
    condition     = var.landing_retention_days >= 1
    error_message = "landing_retention_days must be at least 1 (recovery runs need the batches)."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days a noncurrent (overwritten or deleted) object version is kept before deletion."
  type        = number
  default     = 14
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key (CMEK) as the bucket's default key; null = Google-managed encryption. The GCS service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels applied to the bucket."
  type        = map(string)
  default     = {}
}

variable "compute_logs_bucket_name" {
  description = "Globally unique name of the bucket for Dagster compute logs (DAGSTER_COMPUTE_LOGS_BUCKET)."
  type        = string
}

variable "compute_logs_retention_days" {
  description = "Days step stdout/stderr logs are kept."
  type        = number
  default     = 30
}

variable "soft_delete_retention_days" {
  description = "Days a deleted or overwritten object of the lake stays restorable (GCS soft delete)."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90
    error_message = "soft_delete_retention_days must be 7 to 90 (GCS's range)."
  }
}
