output "project_id" {
  description = "Project of this environment (GCP_PROJECT_ID)."
  value       = var.project_id
}

output "region" {
  description = "Region of the Cloud Run resources (run_launcher region in deploy/dagster.yaml)."
  value       = var.region
}

output "bucket_name" {
  description = "Lake bucket."
  value       = module.storage.bucket_name
}

output "lake_uri" {
  description = "LAKE_URI."
  value       = module.storage.lake_uri
}

output "pubsub_topic" {
  description = "PUBSUB_TOPIC (publishers send events here)."
  value       = module.pubsub.topic_name
}

output "pubsub_subscription" {
  description = "PUBSUB_SUBSCRIPTION."
  value       = module.pubsub.subscription_name
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead-lettered messages."
  value       = module.pubsub.dead_letter_subscription_name
}

output "image_repository_url" {
  description = "Where CI pushes the image (IMAGE_REPOSITORY): <region>-docker.pkg.dev/<project>/<repo>; null when this env does not own the repository."
  value       = var.create_image_repository ? module.artifact_registry[0].repository_url : null
}

output "compute_logs_bucket_name" {
  description = "DAGSTER_COMPUTE_LOGS_BUCKET."
  value       = module.storage.compute_logs_bucket_name
}

output "run_worker_job_name" {
  description = "Cloud Run job CloudRunRunLauncher executes (job_name_by_code_location)."
  value       = module.cloud_run.run_worker_job_name
}

output "webserver_service_name" {
  description = "Cloud Run service of the webserver (for `gcloud run services proxy`)."
  value       = module.cloud_run.webserver_service_name
}

output "webserver_url" {
  description = "run.app URL of the webserver (private; see infra/README.md for access)."
  value       = module.cloud_run.webserver_url
}

output "daemon_worker_pool_name" {
  description = "Cloud Run worker pool running dagster-daemon."
  value       = module.cloud_run.daemon_worker_pool_name
}

output "webserver_service_account_email" {
  description = "Service account of the webserver."
  value       = module.iam.webserver_service_account_email
}

output "daemon_service_account_email" {
  description = "Service account of the daemon."
  value       = module.iam.daemon_service_account_email
}

output "run_worker_service_account_email" {
  description = "Service account of the run worker job."
  value       = module.iam.run_worker_service_account_email
}

output "deploy_service_account_email" {
  description = "Service account CI deploys as."
  value       = module.iam.deploy_service_account_email
}

output "sql_connection_name" {
  description = "Cloud SQL connection name (for cloud-sql-proxy during maintenance)."
  value       = module.cloud_sql.connection_name
}

output "logfire_secret_id" {
  description = "Secret to add the Logfire token to (LOGFIRE_SECRET_NAME)."
  value       = module.secrets.logfire_secret_id
}

output "container_env_names" {
  description = "Plain environment variable names every container gets (plus DAGSTER_PG_URL from Secret Manager)."
  value       = module.cloud_run.env_names
}
