output "webserver_service_name" {
  description = "Cloud Run service of the Dagster webserver."
  value       = google_cloud_run_v2_service.webserver.name
}

output "webserver_url" {
  description = "run.app URL of the webserver (reachable only as its ingress allows; see infra/README.md)."
  value       = google_cloud_run_v2_service.webserver.uri
}

output "daemon_worker_pool_name" {
  description = "Cloud Run worker pool of the Dagster daemon."
  value       = google_cloud_run_v2_worker_pool.daemon.name
}

output "run_worker_job_name" {
  description = "Cloud Run job CloudRunRunLauncher executes per run (job_name_by_code_location in deploy/dagster.yaml)."
  value       = google_cloud_run_v2_job.run_worker.name
}

output "env_names" {
  description = "Names of the plain environment variables every container gets (plus DAGSTER_PG_URL from Secret Manager)."
  value       = sort(keys(local.app_env))
}
