# No provider block here: the env roots (envs/<env>/versions.tf) configure the google
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
