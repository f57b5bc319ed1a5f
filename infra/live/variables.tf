# The root's variables, in two groups: what differs per deployment (TF_VAR_* in CI, a
# git-ignored environments/<env>.local.tfvars by hand; see local.tfvars.example), and, at the
# end, what makes the environment (environments/<env>.tfvars). Everything else has its
# default in modules/stack/variables.tf.

variable "project_id" {
  description = "GCP project this environment is deployed to (one project per environment; TF_VAR_project_id in CI)."
  type        = string
}

variable "region" {
  description = "Region of every regional resource (Cloud Run, Cloud SQL, bucket, registry); the deploy workflow's GCP_REGION (TF_VAR_region in CI)."
  type        = string
}

variable "image" {
  description = "Image the Cloud Run resources are created with, e.g. <region>-docker.pkg.dev/<project>/event-assets/event-assets:<git-sha> (TF_VAR_image in CI). Later images are rolled by the deploy workflow; Terraform ignores image changes."
  type        = string
}

variable "partitions_start_date" {
  description = "PARTITIONS_START_DATE (YYYY-MM-DD): the first day this deployment's data can hold (its first daily partition; older events are quarantined). Set it once; never change it once data exists."
  type        = string
}

variable "webserver_ingress" {
  description = "Webserver ingress (see modules/cloud_run); the default admits only Google Cloud load balancers."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
}

variable "webserver_invoker_members" {
  description = "Who may open the Dagster UI (roles/run.invoker on the webserver), e.g. { data_team = \"group:data@example.com\" }."
  type        = map(string)
  default     = {}
}

variable "create_image_repository" {
  description = "Create the Artifact Registry repository in this environment's project (false when another environment owns the shared one)."
  type        = bool
  default     = true
}

variable "image_writer_members" {
  description = "Who may push images (roles/artifactregistry.writer), e.g. { build = \"serviceAccount:<GCP_BUILD_SERVICE_ACCOUNT>\" }."
  type        = map(string)
  default     = {}
}

variable "image_reader_members" {
  description = "Who may pull images besides this project, e.g. { prod_run = \"serviceAccount:service-<prod project number>@serverless-robot-prod.iam.gserviceaccount.com\" }."
  type        = map(string)
  default     = {}
}

variable "kms_key_name" {
  description = "Optional CMEK key for the bucket, topics and registry; null = Google-managed keys."
  type        = string
  default     = null
}

variable "labels" {
  description = "Extra labels on every resource (added to app/environment/managed-by by the provider's default_labels)."
  type        = map(string)
  default     = {}
}

# ---- what makes the environment: environments/<env>.tfvars ---------------------------
# No defaults: a plan without -var-file=environments/<env>.tfvars fails instead of building
# some other environment.

variable "environment" {
  description = "Which environment this is (environments/<env>.tfvars): the provider's default label `environment` on every resource. Pair it with backend/<env>.gcs.backend of the same name."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod (a new one needs its own environments/<env>.tfvars and backend/<env>.gcs.backend)."
  }
}

variable "sql_tier" {
  description = "Cloud SQL machine tier of the Dagster instance, e.g. db-custom-1-3840."
  type        = string

  validation {
    condition     = startswith(var.sql_tier, "db-")
    error_message = "sql_tier must be a Cloud SQL tier name (db-...)."
  }
}

variable "sql_availability_type" {
  description = "Cloud SQL availability: ZONAL or REGIONAL (HA with a standby in a second zone)."
  type        = string

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.sql_availability_type)
    error_message = "sql_availability_type must be ZONAL or REGIONAL."
  }
}

variable "sql_retained_backups" {
  description = "Number of daily Cloud SQL backups kept."
  type        = number

  validation {
    condition     = var.sql_retained_backups == floor(var.sql_retained_backups) && var.sql_retained_backups >= 1 && var.sql_retained_backups <= 365
    error_message = "sql_retained_backups must be a whole number from 1 to 365."
  }
}

variable "webserver_min_instances" {
  description = "Minimum webserver instances (0 = scale to zero when nobody uses the UI)."
  type        = number

  validation {
    condition     = var.webserver_min_instances == floor(var.webserver_min_instances) && var.webserver_min_instances >= 0
    error_message = "webserver_min_instances must be a whole number, 0 or more."
  }
}
