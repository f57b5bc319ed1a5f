output "repository_id" {
  description = "Repository id."
  value       = google_artifact_registry_repository.images.repository_id
}

output "repository_url" {
  description = "Docker registry path to tag images with: <region>-docker.pkg.dev/<project>/<repo>."
  value       = "${var.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}
