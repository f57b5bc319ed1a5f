# Postgres for the Dagster instance (run, event-log and schedule storage; see
# deploy/dagster.yaml). Private IP only: Cloud Run reaches it through Direct VPC egress.

resource "random_password" "dagster" {
  length  = 32
  special = false # the password goes into a postgresql:// URL unescaped
}

resource "google_sql_database_instance" "dagster" {
  # checkov:skip=CKV_GCP_6: ssl_mode ENCRYPTED_ONLY refuses every non-TLS connection; client certificates (TRUSTED_CLIENT_CERTIFICATE_REQUIRED) have no place to live in the Cloud Run containers and add nothing to password auth on a private-IP-only instance.
  # checkov:skip=CKV2_GCP_13: log_duration logs every statement of Dagster's constant polling and would dominate Cloud Logging cost; Query Insights (enabled below) records statement latency instead.
  project             = var.project_id
  name                = var.instance_name
  region              = var.region
  database_version    = var.database_version
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.tier
    edition                     = "ENTERPRISE"
    availability_type           = var.availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection
    user_labels                 = var.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = var.network_id
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = var.backup_start_time
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = var.retained_backups
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    # Logging flags recommended by the CIS benchmark (and checked by checkov).
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  # The caller must create the private services access connection first
  # (modules/stack: depends_on = [module.network]).
}

resource "google_sql_database" "dagster" {
  project  = var.project_id
  instance = google_sql_database_instance.dagster.name
  name     = var.database_name
}

resource "google_sql_user" "dagster" {
  project  = var.project_id
  instance = google_sql_database_instance.dagster.name
  name     = var.user_name
  password = random_password.dagster.result
}

locals {
  # DAGSTER_PG_URL: TCP to the private IP, TLS required (the instance refuses plain text).
  database_url = format(
    "postgresql://%s:%s@%s:5432/%s?sslmode=require",
    google_sql_user.dagster.name,
    random_password.dagster.result,
    google_sql_database_instance.dagster.private_ip_address,
    google_sql_database.dagster.name,
  )
}
