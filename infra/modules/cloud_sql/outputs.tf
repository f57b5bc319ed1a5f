output "instance_name" {
  description = "Cloud SQL instance name."
  value       = google_sql_database_instance.dagster.name
}

output "connection_name" {
  description = "project:region:instance, for the Cloud SQL Auth Proxy / connectors."
  value       = google_sql_database_instance.dagster.connection_name
}

output "private_ip_address" {
  description = "Private IP the app connects to."
  value       = google_sql_database_instance.dagster.private_ip_address
}

output "database_name" {
  description = "Database of the Dagster instance."
  value       = google_sql_database.dagster.name
}

output "user_name" {
  description = "Database user."
  value       = google_sql_user.dagster.name
}

output "database_url" {
  description = "DAGSTER_PG_URL (contains the password; stored in Secret Manager, never printed)."
  value       = local.database_url
  sensitive   = true
}
