variable "project_id" {
  description = "GCP project of the repository."
  type        = string
}

variable "location" {
  description = "Region of the repository (same as Cloud Run)."
  type        = string
}

variable "repository_id" {
  description = "Repository id, e.g. \"event-assets\"."
  type        = string
  default     = "event-assets"
}

variable "immutable_tags" {
  description = "Refuse to move an existing tag. Off by default: the deploy workflow re-pushes `latest` (deploys themselves use the unique short-SHA tag)."
  type        = bool
  default     = false
}

variable "keep_recent_versions" {
  description = "How many most recent image versions the cleanup policy always keeps."
  type        = number
  default     = 20
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key (CMEK) for the repository; null = Google-managed encryption."
  type        = string
  default     = null
}

variable "writer_members" {
  description = "IAM members that may push images (roles/artifactregistry.writer on this repository), keyed by a static label so for_each keys are known at plan time."
  type        = map(string)
  default     = {}
}

variable "reader_members" {
  description = "IAM members that may pull images (roles/artifactregistry.reader on this repository), keyed by a static label so for_each keys are known at plan time."
  type        = map(string)
  default     = {}
}

variable "labels" {
  description = "Labels applied to the repository."
  type        = map(string)
  default     = {}
}
