# Service accounts and least-privilege bindings, each on the one resource it is for.
# One account per workload, so a compromised webserver or daemon cannot do what only the
# run worker needs (delete lake objects). Nothing here grants roles/storage.objectAdmin, or
# storage/pubsub admin, owner or editor at project level.

resource "google_service_account" "webserver" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-web"
  display_name = "event-assets webserver (Dagster UI, Cloud Run service)"
}

resource "google_service_account" "daemon" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-daemon"
  display_name = "event-assets daemon (sensor, run queue, run monitoring; Cloud Run worker pool)"
}

resource "google_service_account" "run_worker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-run"
  display_name = "event-assets run worker (one Cloud Run job execution per Dagster run)"
}

resource "google_service_account" "deploy" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-deploy"
  display_name = "event-assets deploy (CI: push image, roll Cloud Run revisions)"
}

# The single runtime account of earlier versions becomes the run worker's (same id, same
# email): an environment applied before the split keeps its run worker's identity and the
# grants that still apply, instead of destroying and recreating them mid-apply.
moved {
  from = google_service_account.runtime
  to   = google_service_account.run_worker
}

moved {
  from = google_project_iam_member.runtime_cloudsql_client
  to   = google_project_iam_member.cloudsql_client["run_worker"]
}

moved {
  from = google_project_iam_member.runtime_log_writer
  to   = google_project_iam_member.log_writer["run_worker"]
}

moved {
  from = google_storage_bucket_iam_member.runtime_compute_logs_bucket_get
  to   = google_storage_bucket_iam_member.compute_logs_bucket_get["run_worker"]
}

moved {
  from = google_service_account_iam_member.deploy_acts_as_runtime
  to   = google_service_account_iam_member.deploy_acts_as["run_worker"]
}

locals {
  # Keyed by static labels, so for_each keys are known at plan time.
  workload_accounts = {
    webserver  = google_service_account.webserver
    daemon     = google_service_account.daemon
    run_worker = google_service_account.run_worker
  }
  workload_members = {
    for workload, account in local.workload_accounts : workload => "serviceAccount:${account.email}"
  }
  webserver_member  = local.workload_members["webserver"]
  daemon_member     = local.workload_members["daemon"]
  run_worker_member = local.workload_members["run_worker"]
  deploy_member     = "serviceAccount:${google_service_account.deploy.email}"
}

# ---- webserver: reads, and cancels runs from the UI --------------------------------

# Read-only on the lake: the webserver writes no object.
resource "google_storage_bucket_iam_member" "webserver_lake_viewer" {
  bucket = var.lake_bucket_name
  role   = "roles/storage.objectViewer"
  member = local.webserver_member
}

# Compute logs are only read back in the UI (storage.buckets.get: compute_logs_bucket_get).
resource "google_storage_bucket_iam_member" "webserver_compute_logs_viewer" {
  bucket = var.compute_logs_bucket_name
  role   = "roles/storage.objectViewer"
  member = local.webserver_member
}

# Terminating a run in the UI: CloudRunRunLauncher.terminate calls only
# ExecutionsClient.cancel_execution (run.executions.cancel); the webserver never launches
# (the QueuedRunCoordinator only enqueues, the daemon launches). roles/run.jobsExecutor is
# the narrowest predefined role holding run.executions.cancel (run.executions.cancel +
# run.jobs.run; Cloud Run IAM roles reference). Without run.jobs.runWithOverrides its
# run.jobs.run can only start the job's default args (`dagster --version`, a no-op), never a
# Dagster run, so it is preferred to a custom role that would drop only that no-op (and
# need role administration at project level; a deleted custom role's id is blocked 37 days).
resource "google_cloud_run_v2_job_iam_member" "webserver_job_cancel" {
  project  = var.project_id
  location = var.region
  name     = var.run_worker_job_name
  role     = "roles/run.jobsExecutor"
  member   = local.webserver_member
}

# ---- daemon: sensor, run queue, run monitoring ----------------------------------------

# Pull, ack and modify ack deadlines on the ingest subscription only (the sensor). The app
# never reads subscription metadata, so roles/pubsub.viewer is not granted.
resource "google_pubsub_subscription_iam_member" "daemon_subscriber" {
  project      = var.project_id
  subscription = var.subscription_name
  role         = "roles/pubsub.subscriber"
  member       = local.daemon_member
}

# The sensor writes new landing batches and appends to the quarantine and deliveries Delta
# tables: create + read, never delete. GCS authorizes an overwrite as storage.objects.delete,
# so the daemon runs with STORAGE_CAN_DELETE=false (cloud_run module): its Delta commits
# write no checkpoint and expire no log, which the run worker's commits do instead.
resource "google_storage_bucket_iam_member" "daemon_lake_creator" {
  bucket = var.lake_bucket_name
  role   = "roles/storage.objectCreator"
  member = local.daemon_member
}

resource "google_storage_bucket_iam_member" "daemon_lake_viewer" {
  bucket = var.lake_bucket_name
  role   = "roles/storage.objectViewer"
  member = local.daemon_member
}

# Sensor tick logs are captured and re-uploaded to the same keys while a tick runs (an
# overwrite, so delete is needed): object create/get/list/update/delete, no IAM/ACL admin.
resource "google_storage_bucket_iam_member" "daemon_compute_logs_objects" {
  bucket = var.compute_logs_bucket_name
  role   = "roles/storage.objectUser"
  member = local.daemon_member
}

# CloudRunRunLauncher.launch_run calls jobs.run with per-run arg overrides; run monitoring
# cancels executions past max_runtime (run.executions.cancel, also in this role).
resource "google_cloud_run_v2_job_iam_member" "daemon_job_executor" {
  project  = var.project_id
  location = var.region
  name     = var.run_worker_job_name
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = local.daemon_member
}

# Run monitoring (check_run_worker_health) calls ExecutionsClient.get_execution, i.e.
# run.executions.get, which no executor role holds; roles/run.viewer is the narrowest
# predefined role with it, read-only and on this job only.
resource "google_cloud_run_v2_job_iam_member" "daemon_job_viewer" {
  project  = var.project_id
  location = var.region
  name     = var.run_worker_job_name
  role     = "roles/run.viewer"
  member   = local.daemon_member
}

# ---- run worker: every Dagster run (merges, compaction, vacuum) ----------------------

# Object-level create/get/list/update/delete in the lake (Delta commits, checkpoints, log
# expiry, vacuum, moving merged landing batches); no IAM/ACL admin. The only workload that
# may delete lake objects; the lake's soft delete keeps even a compromised one from
# destroying data for good (storage module).
resource "google_storage_bucket_iam_member" "run_worker_lake_objects" {
  bucket = var.lake_bucket_name
  role   = "roles/storage.objectUser"
  member = local.run_worker_member
}

# Step logs, uploaded every 30 s to the same keys (overwrites).
resource "google_storage_bucket_iam_member" "run_worker_compute_logs_objects" {
  bucket = var.compute_logs_bucket_name
  role   = "roles/storage.objectUser"
  member = local.run_worker_member
}

# ---- all three -------------------------------------------------------------------------

# storage.buckets.get on the compute-logs bucket, which GCSComputeLogManager checks at
# start-up in every workload (roles/storage.legacyBucketReader: buckets.get + objects.list).
resource "google_storage_bucket_iam_member" "compute_logs_bucket_get" {
  for_each = local.workload_members

  bucket = var.compute_logs_bucket_name
  role   = "roles/storage.legacyBucketReader"
  member = each.value
}

# Cloud SQL IAM exists only at project level; the IAM condition narrows the binding to
# the Dagster instance. Needed for the Cloud SQL connectors / Auth Proxy
# (cloudsql.instances.connect, .get); the app itself connects over private IP + TLS.
resource "google_project_iam_member" "cloudsql_client" {
  for_each = local.workload_members

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = each.value

  condition {
    title       = "dagster-instance-only"
    description = "Only the Cloud SQL instance of the Dagster storage."
    expression  = "resource.service == \"sqladmin.googleapis.com\" && resource.name == \"projects/${var.project_id}/instances/${var.sql_instance_name}\""
  }
}

# Write log entries (Logging API) — a project-level-only role.
resource "google_project_iam_member" "log_writer" {
  for_each = local.workload_members

  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = each.value
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

# Deploying a revision that runs as a workload account needs actAs on that account: on
# these three accounts only.
resource "google_service_account_iam_member" "deploy_acts_as" {
  for_each = local.workload_accounts

  service_account_id = each.value.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.deploy_member
}
