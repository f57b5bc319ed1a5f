# What the app, the deploy workflow and operators need from this environment, re-exported from
# modules/stack. modules/stack/outputs.tf has the full set; read any other one with
# `terraform console` (module.stack.<name>).

output "lake_uri" {
  description = "LAKE_URI."
  value       = module.stack.lake_uri
}

output "pubsub_topic" {
  description = "PUBSUB_TOPIC (publishers send events here)."
  value       = module.stack.pubsub_topic
}

output "pubsub_subscription" {
  description = "PUBSUB_SUBSCRIPTION."
  value       = module.stack.pubsub_subscription
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead-lettered messages."
  value       = module.stack.dead_letter_subscription
}

output "image_repository_url" {
  description = "Where CI pushes the image (IMAGE_REPOSITORY): <region>-docker.pkg.dev/<project>/<repo>; null when this env does not own the repository."
  value       = module.stack.image_repository_url
}

output "webserver_service_name" {
  description = "Cloud Run service of the webserver (for `gcloud run services proxy`)."
  value       = module.stack.webserver_service_name
}

output "webserver_url" {
  description = "run.app URL of the webserver (private; see infra/README.md for access)."
  value       = module.stack.webserver_url
}

output "daemon_worker_pool_name" {
  description = "Cloud Run worker pool running dagster-daemon."
  value       = module.stack.daemon_worker_pool_name
}

output "run_worker_job_name" {
  description = "Cloud Run job CloudRunRunLauncher executes (job_name_by_code_location)."
  value       = module.stack.run_worker_job_name
}

output "webserver_service_account_email" {
  description = "Service account of the webserver."
  value       = module.stack.webserver_service_account_email
}

output "daemon_service_account_email" {
  description = "Service account of the daemon."
  value       = module.stack.daemon_service_account_email
}

output "run_worker_service_account_email" {
  description = "Service account of the run worker job."
  value       = module.stack.run_worker_service_account_email
}

output "deploy_service_account_email" {
  description = "Service account CI deploys as."
  value       = module.stack.deploy_service_account_email
}

output "logfire_secret_id" {
  description = "Secret to add the Logfire token to (LOGFIRE_SECRET_NAME)."
  value       = module.stack.logfire_secret_id
}

output "sql_connection_name" {
  description = "Cloud SQL connection name (for cloud-sql-proxy during maintenance)."
  value       = module.stack.sql_connection_name
}
