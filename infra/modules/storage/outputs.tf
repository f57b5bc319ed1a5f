output "bucket_name" {
  description = "Name of the lake bucket."
  value       = google_storage_bucket.lake.name
}

output "bucket_url" {
  description = "gs:// URL of the lake bucket."
  value       = google_storage_bucket.lake.url
}

output "lake_uri" {
  description = "LAKE_URI for the app: gs://<bucket>/<lake_prefix>."
  value       = local.lake_uri
}

output "landing_merged_prefix" {
  description = "Object prefix the landing lifecycle rule applies to: merged batches only."
  value       = local.merged_prefix
}

output "compute_logs_bucket_name" {
  description = "Bucket of Dagster compute logs (DAGSTER_COMPUTE_LOGS_BUCKET)."
  value       = google_storage_bucket.compute_logs.name
}
