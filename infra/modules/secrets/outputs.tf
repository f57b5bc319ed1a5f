output "logfire_secret_id" {
  description = "Secret id of the Logfire token (LOGFIRE_SECRET_NAME)."
  value       = google_secret_manager_secret.logfire_token.secret_id
}

output "logfire_secret_name" {
  description = "Full resource name projects/<n>/secrets/<id> of the Logfire token secret."
  value       = google_secret_manager_secret.logfire_token.name
}

output "pg_url_secret_id" {
  description = "Secret id holding DAGSTER_PG_URL."
  value       = google_secret_manager_secret.dagster_pg_url.secret_id
}

output "pg_url_secret_version" {
  description = "Version number of the current DAGSTER_PG_URL; Cloud Run pins it, so a new password rolls a new revision."
  value       = google_secret_manager_secret_version.dagster_pg_url.version
}
