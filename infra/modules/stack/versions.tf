# No provider block here: the root (live/versions.tf) configures the google
# provider (project, region, default labels) and this module inherits it.
terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.40, < 7.0"
    }
  }
}
