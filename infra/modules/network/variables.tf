variable "project_id" {
  description = "GCP project that owns the network."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run subnet (same region as Cloud Run and Cloud SQL)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name, e.g. \"event-assets-dev\"."
  type        = string
}

variable "subnet_cidr" {
  description = "CIDR of the subnet Cloud Run Direct VPC egress takes addresses from (/26 or larger)."
  type        = string
  default     = "10.10.0.0/24"
}

variable "private_services_prefix_length" {
  description = "Prefix length of the range reserved for private services access (Cloud SQL)."
  type        = number
  default     = 20
}
