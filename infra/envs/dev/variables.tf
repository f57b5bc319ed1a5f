# Only what differs per deployment (terraform.tfvars, or TF_VAR_* in CI). Everything else
# has its default in modules/stack/variables.tf; what makes this environment is in env.tf.

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
