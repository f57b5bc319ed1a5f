variable "project_id" {
  description = "GCP project of the Cloud Run resources (also GCP_PROJECT_ID for the app)."
  type        = string
}

variable "region" {
  description = "Cloud Run region."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the resource names: <prefix>-webserver, <prefix>-daemon, <prefix>-run-worker. The job name must match job_name_by_code_location in deploy/dagster.yaml."
  type        = string
  default     = "event-assets"
}

variable "image" {
  description = "Image the three resources are created with (Artifact Registry path, unique tag or digest). Later images are rolled by the deploy workflow; Terraform ignores image changes."
  type        = string
}

variable "webserver_service_account_email" {
  description = "Service account the webserver service runs as."
  type        = string
}

variable "daemon_service_account_email" {
  description = "Service account the daemon worker pool runs as."
  type        = string
}

variable "run_worker_service_account_email" {
  description = "Service account the run worker job's executions run as."
  type        = string
}

variable "network_name" {
  description = "VPC for Direct VPC egress (private-range traffic only: Cloud SQL)."
  type        = string
}

variable "subnetwork_name" {
  description = "Subnet for Direct VPC egress."
  type        = string
}

# ---- app settings (names in event_assets/settings.py) ----------------------------

variable "lake_uri" {
  description = "LAKE_URI: gs://<bucket>/<prefix>."
  type        = string

  validation {
    condition     = startswith(var.lake_uri, "gs://")
    error_message = "lake_uri must be a gs:// URI in the cloud."
  }
}

variable "pubsub_topic" {
  description = "PUBSUB_TOPIC: short topic name."
  type        = string
}

variable "pubsub_subscription" {
  description = "PUBSUB_SUBSCRIPTION: short subscription name."
  type        = string
}

variable "ack_deadline_seconds" {
  description = "ACK_DEADLINE_SECONDS: pass the subscription's own ack deadline."
  type        = number
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
  description = "PARTITIONS_START_DATE (YYYY-MM-DD): first daily partition; must never change once data exists."
  type        = string

  validation {
    condition     = can(regex("^\\d{4}-\\d{2}-\\d{2}$", var.partitions_start_date))
    error_message = "partitions_start_date must be YYYY-MM-DD."
  }
}

variable "logfire_secret_id" {
  description = "LOGFIRE_SECRET_NAME: Secret Manager secret id of the Logfire token (read at start-up)."
  type        = string
}

variable "pg_url_secret_id" {
  description = "Secret id of DAGSTER_PG_URL."
  type        = string
}

variable "pg_url_secret_version" {
  description = "Version of the DAGSTER_PG_URL secret to mount (pinned, so rotation rolls new revisions)."
  type        = string
}

variable "dagster_home" {
  description = "DAGSTER_HOME inside the image: the directory the Dockerfile copies deploy/dagster.yaml into."
  type        = string
  default     = "/app/dagster_home"
}

variable "compute_logs_bucket" {
  description = "DAGSTER_COMPUTE_LOGS_BUCKET: bucket name (no gs://) of GCSComputeLogManager in deploy/dagster.yaml."
  type        = string
}

# ---- webserver -----------------------------------------------------------------

variable "webserver_ingress" {
  description = "Ingress of the webserver. INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER (default: only via a Google Cloud load balancer, e.g. an IAP-protected one) or INGRESS_TRAFFIC_INTERNAL_ONLY (from the VPC). INGRESS_TRAFFIC_ALL is only for `gcloud run services proxy` access and still requires roles/run.invoker."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_ALL"], var.webserver_ingress)
    error_message = "webserver_ingress must be a Cloud Run v2 ingress value."
  }
}

variable "webserver_invoker_members" {
  description = "Who may open the webserver (roles/run.invoker), keyed by a static label, e.g. { data_team = \"group:data@example.com\" }."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for m in values(var.webserver_invoker_members) : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "The webserver must not be public: allUsers / allAuthenticatedUsers are refused."
  }
}

variable "webserver_min_instances" {
  description = "Minimum webserver instances (0 = scale to zero when nobody uses the UI)."
  type        = number
  default     = 0
}

variable "webserver_max_instances" {
  description = "Maximum webserver instances."
  type        = number
  default     = 2
}

variable "webserver_cpu" {
  description = "CPU limit of a webserver instance."
  type        = string
  default     = "1"
}

variable "webserver_memory" {
  description = "Memory limit of a webserver instance."
  type        = string
  default     = "2Gi"
}

# ---- daemon / run worker -----------------------------------------------------------

variable "daemon_cpu" {
  description = "CPU limit of the daemon (sensor ticks decode and land batches in-process)."
  type        = string
  default     = "1"
}

variable "daemon_memory" {
  description = "Memory limit of the daemon (Mi or Gi, at least 1Gi); PULL_MAX_BYTES, the most one pull round holds, is derived from it."
  type        = string
  default     = "2Gi"

  validation {
    condition = (
      can(regex("^[0-9]+(Mi|Gi)$", var.daemon_memory))
      && (endswith(var.daemon_memory, "Gi") ? tonumber(trimsuffix(var.daemon_memory, "Gi")) * 1024 : tonumber(trimsuffix(var.daemon_memory, "Mi"))) >= 1024
    )
    error_message = "daemon_memory must be like 2Gi or 3072Mi, at least 1Gi."
  }
}

variable "run_worker_cpu" {
  description = "CPU limit of one run worker execution."
  type        = string
  default     = "2"
}

variable "run_worker_memory" {
  description = "Memory limit of one run worker execution (a partition merge)."
  type        = string
  default     = "4Gi"
}

variable "run_timeout_seconds" {
  description = "Default task timeout of the run worker job (CloudRunRunLauncher overrides it with its run_timeout)."
  type        = number
  default     = 3600
}

variable "deletion_protection" {
  description = "Terraform-side deletion protection of the service, worker pool and job."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels applied to every resource."
  type        = map(string)
  default     = {}
}
