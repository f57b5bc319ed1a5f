variable "project_id" {
  description = "GCP project of the service accounts and resources."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run resources."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the service account ids (account ids are 6-30 characters: keep it short, e.g. \"evassets-dev\")."
  type        = string

  validation {
    condition     = length(var.name_prefix) <= 23 && can(regex("^[a-z][a-z0-9-]+$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and dashes, at most 23 characters (account ids <prefix>-deploy and <prefix>-daemon)."
  }
}

variable "lake_bucket_name" {
  description = "Lake bucket: objectViewer for the webserver, objectCreator + objectViewer for the daemon, objectUser for the run worker."
  type        = string
}

variable "compute_logs_bucket_name" {
  description = "Compute logs bucket: object access per workload, and storage.buckets.get for all three."
  type        = string
}

variable "subscription_name" {
  description = "Ingest subscription the daemon's account gets roles/pubsub.subscriber on."
  type        = string
}

variable "sql_instance_name" {
  description = "Cloud SQL instance the conditional roles/cloudsql.client binding is limited to."
  type        = string
}

variable "run_worker_job_name" {
  description = "Cloud Run job of the run worker: the daemon launches (with overrides) and monitors it, the webserver cancels its executions."
  type        = string
}

variable "webserver_service_name" {
  description = "Cloud Run service of the Dagster webserver (deploy account: roles/run.developer)."
  type        = string
}

variable "daemon_worker_pool_name" {
  description = "Cloud Run worker pool of the Dagster daemon (deploy account: roles/run.developer)."
  type        = string
}
