output "webserver_service_account_email" {
  description = "Email of the webserver's service account (Cloud Run service)."
  value       = google_service_account.webserver.email
}

output "webserver_service_account_member" {
  description = "IAM member string of the webserver's service account."
  value       = local.webserver_member
}

output "daemon_service_account_email" {
  description = "Email of the daemon's service account (Cloud Run worker pool)."
  value       = google_service_account.daemon.email
}

output "daemon_service_account_member" {
  description = "IAM member string of the daemon's service account."
  value       = local.daemon_member
}

output "run_worker_service_account_email" {
  description = "Email of the run worker's service account (Cloud Run job)."
  value       = google_service_account.run_worker.email
}

output "run_worker_service_account_member" {
  description = "IAM member string of the run worker's service account."
  value       = local.run_worker_member
}

output "deploy_service_account_email" {
  description = "Email of the deploy service account (CI)."
  value       = google_service_account.deploy.email
}

output "deploy_service_account_member" {
  description = "IAM member string of the deploy service account."
  value       = local.deploy_member
}
