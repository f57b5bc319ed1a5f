variable "project_id" {
  description = "GCP project of the instance."
  type        = string
}

variable "region" {
  description = "Region of the instance (same as Cloud Run)."
  type        = string
}

variable "instance_name" {
  description = "Cloud SQL instance name."
  type        = string
}

variable "database_version" {
  description = "Postgres major version."
  type        = string
  default     = "POSTGRES_18"
}

variable "tier" {
  description = "Machine tier; Dagster's storage is light: db-custom-1-3840 is plenty for one code location."
  type        = string
  default     = "db-custom-1-3840"
}

variable "availability_type" {
  description = "ZONAL (dev) or REGIONAL (prod, HA failover)."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.availability_type)
    error_message = "availability_type must be ZONAL or REGIONAL."
  }
}

variable "disk_size_gb" {
  description = "Initial disk size in GB (autoresize is on)."
  type        = number
  default     = 10
}

variable "backup_start_time" {
  description = "Daily backup window start (HH:MM, UTC)."
  type        = string
  default     = "02:00"
}

variable "retained_backups" {
  description = "Number of daily backups kept."
  type        = number
  default     = 14
}

variable "deletion_protection" {
  description = "Protect the instance from deletion, in Terraform and in the Cloud SQL API."
  type        = bool
  default     = true
}

variable "network_id" {
  description = "Id of the VPC the private IP is allocated in."
  type        = string
}

variable "database_name" {
  description = "Database of the Dagster instance."
  type        = string
  default     = "dagster"
}

variable "user_name" {
  description = "Database user Dagster connects as."
  type        = string
  default     = "dagster"
}

variable "labels" {
  description = "Labels applied to the instance."
  type        = map(string)
  default     = {}
}
