output "network_id" {
  description = "Self-link style id of the VPC."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.this.name
}

output "subnetwork_id" {
  description = "Id of the subnet Cloud Run egresses through."
  value       = google_compute_subnetwork.run.id
}

output "subnetwork_name" {
  description = "Name of the subnet Cloud Run egresses through."
  value       = google_compute_subnetwork.run.name
}

output "private_services_connection" {
  description = "The private services access connection; Cloud SQL depends on it."
  value       = google_service_networking_connection.private_services.id
}
