terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.40" # >= 6.40 < 7: google_cloud_run_v2_worker_pool and its IAM resources
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = merge(var.labels, {
    app         = "event-assets"
    environment = var.environment
    managed-by  = "terraform"
  })
}
