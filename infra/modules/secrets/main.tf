# Secret Manager: the Logfire token (value added out of band, never in Terraform) and
# DAGSTER_PG_URL (generated from the Cloud SQL user's random password).

resource "google_secret_manager_secret" "logfire_token" {
  project   = var.project_id
  secret_id = var.logfire_secret_id
  labels    = var.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

# No google_secret_manager_secret_version here on purpose: the token is added with
#   printf %s "$TOKEN" | gcloud secrets versions add <logfire_secret_id> --data-file=-
# and the app reads versions/latest at start-up (LOGFIRE_SECRET_NAME).

resource "google_secret_manager_secret" "dagster_pg_url" {
  project   = var.project_id
  secret_id = var.pg_url_secret_id
  labels    = var.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "dagster_pg_url" {
  secret      = google_secret_manager_secret.dagster_pg_url.id
  secret_data = var.dagster_pg_url
}

# Read access for the workloads' service accounts (webserver, daemon, run worker), on these
# two secrets only.
resource "google_secret_manager_secret_iam_member" "logfire_token_accessors" {
  for_each = var.accessor_members

  project   = var.project_id
  secret_id = google_secret_manager_secret.logfire_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value
}

resource "google_secret_manager_secret_iam_member" "dagster_pg_url_accessors" {
  for_each = var.accessor_members

  project   = var.project_id
  secret_id = google_secret_manager_secret.dagster_pg_url.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value
}
