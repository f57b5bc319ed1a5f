# Service accounts and least-privilege bindings, each on the one resource it is for.
# Nothing here grants storage/pubsub admin, owner or editor at project level.

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-run"
  display_name = "event-assets runtime (Dagster webserver, daemon, run worker job)"
}

resource "google_service_account" "deploy" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-deploy"
  display_name = "event-assets deploy (CI: push image, roll Cloud Run revisions)"
}

locals {
  runtime_member = "serviceAccount:${google_service_account.runtime.email}"
  deploy_member  = "serviceAccount:${google_service_account.deploy.email}"
}

# ---- runtime: data -------------------------------------------------------------

# Read/write/delete objects in the lake bucket only (Delta commits, landing, vacuum).
resource "google_storage_bucket_iam_member" "runtime_lake_objects" {
  bucket = var.lake_bucket_name
  role   = "roles/storage.objectAdmin"
  member = local.runtime_member
}

# Dagster compute logs: read/write objects, and storage.buckets.get, which
# GCSComputeLogManager checks at start-up (roles/storage.legacyBucketReader: buckets.get +
# objects.list, on this bucket only).
resource "google_storage_bucket_iam_member" "runtime_compute_logs_objects" {
  bucket = var.compute_logs_bucket_name
  role   = "roles/storage.objectAdmin"
  member = local.runtime_member
}

resource "google_storage_bucket_iam_member" "runtime_compute_logs_bucket_get" {
  bucket = var.compute_logs_bucket_name
  role   = "roles/storage.legacyBucketReader"
  member = local.runtime_member
}

# Pull, ack and modify ack deadlines on the ingest subscription only. The app never
# reads subscription metadata, so roles/pubsub.viewer is not granted.
resource "google_pubsub_subscription_iam_member" "runtime_subscriber" {
  project      = var.project_id
  subscription = var.subscription_name
  role         = "roles/pubsub.subscriber"
  member       = local.runtime_member
}

# ---- runtime: launching runs ---------------------------------------------------

# CloudRunRunLauncher (in the daemon, and the webserver for run termination) calls
# jobs.run with per-run arg overrides and reads/cancels executions: granted on the
# run-worker job only.
resource "google_cloud_run_v2_job_iam_member" "runtime_job_executor" {
  project  = var.project_id
  location = var.region
  name     = var.run_worker_job_name
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = local.runtime_member
}

# ---- runtime: project-level roles that have no narrower resource -----------------

# Cloud SQL IAM exists only at project level; the IAM condition narrows the binding to
# the Dagster instance. Needed for the Cloud SQL connectors / Auth Proxy
# (cloudsql.instances.connect, .get); the app itself connects over private IP + TLS.
resource "google_project_iam_member" "runtime_cloudsql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = local.runtime_member

  condition {
    title       = "dagster-instance-only"
    description = "Only the Cloud SQL instance of the Dagster storage."
    expression  = "resource.service == \"sqladmin.googleapis.com\" && resource.name == \"projects/${var.project_id}/instances/${var.sql_instance_name}\""
  }
}

# Write log entries (Logging API) — a project-level-only role.
resource "google_project_iam_member" "runtime_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = local.runtime_member
}

# ---- deploy --------------------------------------------------------------------

# Roll new revisions / image tags of the three Cloud Run resources, nothing else.
resource "google_cloud_run_v2_job_iam_member" "deploy_job_developer" {
  project  = var.project_id
  location = var.region
  name     = var.run_worker_job_name
  role     = "roles/run.developer"
  member   = local.deploy_member
}

resource "google_cloud_run_v2_service_iam_member" "deploy_webserver_developer" {
  project  = var.project_id
  location = var.region
  name     = var.webserver_service_name
  role     = "roles/run.developer"
  member   = local.deploy_member
}

resource "google_cloud_run_v2_worker_pool_iam_member" "deploy_daemon_developer" {
  project  = var.project_id
  location = var.region
  name     = var.daemon_worker_pool_name
  role     = "roles/run.developer"
  member   = local.deploy_member
}

# Deploying a revision that runs as the runtime account needs actAs on that account only.
resource "google_service_account_iam_member" "deploy_acts_as_runtime" {
  service_account_id = google_service_account.runtime.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.deploy_member
}
