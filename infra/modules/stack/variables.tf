variable "project_id" {
  description = "GCP project this environment is deployed to (one project per environment)."
  type        = string
}

variable "region" {
  description = "Region of every regional resource (Cloud Run, Cloud SQL, bucket, registry)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of resource names. The run worker job is <name_prefix>-run-worker, which deploy/dagster.yaml names."
  type        = string
  default     = "event-assets"
}

variable "image" {
  description = "Image the Cloud Run resources are created with, e.g. <region>-docker.pkg.dev/<project>/event-assets/event-assets:<git-sha> (TF_VAR_image in CI). Later images are rolled by the deploy workflow; Terraform ignores image changes."
  type        = string
}

variable "bucket_name" {
  description = "Lake bucket name; null = \"<project_id>-event-assets-lake\"."
  type        = string
  default     = null
}

variable "compute_logs_bucket_name" {
  description = "Bucket of Dagster compute logs; null = \"<project_id>-event-assets-dagster-logs\"."
  type        = string
  default     = null
}

variable "landing_retention_days" {
  description = "Days landing batches are kept (the replay/backfill window from raw batches)."
  type        = number
  default     = 30
}

variable "pubsub_topic" {
  description = "Events topic name (PUBSUB_TOPIC)."
  type        = string
  default     = "events"
}

variable "pubsub_subscription" {
  description = "Ingest subscription name (PUBSUB_SUBSCRIPTION)."
  type        = string
  default     = "events-ingest"
}

variable "ack_deadline_seconds" {
  description = "Subscription ack deadline, passed to the app as ACK_DEADLINE_SECONDS."
  type        = number
  default     = 120
}

variable "max_message_bytes" {
  description = "MAX_MESSAGE_BYTES: larger payloads are quarantined."
  type        = number
  default     = 1048576
}

variable "pull_max_messages" {
  description = "PULL_MAX_MESSAGES: most messages one sensor tick pulls."
  type        = number
  default     = 50000
}

variable "decode_workers" {
  description = "DECODE_WORKERS: processes that decode sensor pulls in parallel; 0 on a 1-CPU daemon, else its CPU count."
  type        = number
  default     = 0
}

variable "partitions_start_date" {
  description = "PARTITIONS_START_DATE (YYYY-MM-DD); never change it once data exists."
  type        = string
}

variable "webserver_ingress" {
  description = "Webserver ingress (see ../cloud_run); the default admits only Google Cloud load balancers."
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

# ---- what makes an environment (set in live/environments/<env>.tfvars) -------------

variable "sql_tier" {
  description = "Cloud SQL machine tier of the Dagster instance, e.g. db-custom-1-3840."
  type        = string
}

variable "sql_availability_type" {
  description = "Cloud SQL availability: ZONAL or REGIONAL (HA with a standby in a second zone)."
  type        = string
}

variable "sql_retained_backups" {
  description = "Number of daily Cloud SQL backups kept."
  type        = number
}

variable "webserver_min_instances" {
  description = "Minimum webserver instances (0 = scale to zero when nobody uses the UI)."
  type        = number
  default     = 0
}
