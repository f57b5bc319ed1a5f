output "runtime_service_account_email" {
  description = "Email of the runtime service account (webserver, daemon, run worker job)."
  value       = google_service_account.runtime.email
}

output "runtime_service_account_member" {
  description = "IAM member string of the runtime service account."
  value       = local.runtime_member
}

output "deploy_service_account_email" {
  description = "Email of the deploy service account (CI)."
  value       = google_service_account.deploy.email
}

output "deploy_service_account_member" {
  description = "IAM member string of the deploy service account."
  value       = local.deploy_member
}
