# Dagster on Cloud Run, one image for all three parts:
#   webserver  - Cloud Run service, private (no public invoker, internal ingress), scales to zero
#   daemon     - Cloud Run worker pool, exactly one always-on instance (sensors, schedules,
#                run queue); worker pools have no HTTP port, which dagster-daemon needs
#   run worker - Cloud Run job; CloudRunRunLauncher executes it once per Dagster run and
#                overrides its args with `dagster api execute_run <run>`.
# The image has no ENTRYPOINT, so `args` is each container's whole command and `command` is
# never set. Terraform creates the resources with var.image; afterwards the deploy workflow
# rolls new images (gcloud ... update --image), so the image is in ignore_changes.

locals {
  webserver_name = "${var.name_prefix}-webserver"
  daemon_name    = "${var.name_prefix}-daemon"
  job_name       = "${var.name_prefix}-run-worker"

  # The sensor's pull round lives in the daemon's container (in its code server): a round
  # peaks at about 8x its payload bytes (non-ASCII text; BENCHMARKS.md, round_memory), the
  # daemon and code server take ~0.5 GiB, and a round may use a third of the rest
  # (2Gi: 64 MiB, the app's default).
  daemon_memory_mib = (
    endswith(var.daemon_memory, "Gi")
    ? tonumber(trimsuffix(var.daemon_memory, "Gi")) * 1024
    : tonumber(trimsuffix(var.daemon_memory, "Mi"))
  )
  pull_max_bytes = floor((local.daemon_memory_mib - 512) * 1048576 / 24)

  # Plain environment of every container. Every key is a field of
  # event_assets.settings.Settings, except the names deploy/dagster.yaml reads (GCP_REGION,
  # DAGSTER_COMPUTE_LOGS_BUCKET) and DAGSTER_HOME; event_assets_tests/test_infra.py checks it.
  app_env = {
    LAKE_URI                    = var.lake_uri
    GCP_PROJECT_ID              = var.project_id
    PUBSUB_TOPIC                = var.pubsub_topic
    PUBSUB_SUBSCRIPTION         = var.pubsub_subscription
    ACK_DEADLINE_SECONDS        = tostring(var.ack_deadline_seconds)
    MAX_MESSAGE_BYTES           = tostring(var.max_message_bytes)
    PULL_MAX_MESSAGES           = tostring(var.pull_max_messages)
    PULL_MAX_BYTES              = tostring(local.pull_max_bytes)
    DECODE_WORKERS              = tostring(var.decode_workers)
    PARTITIONS_START_DATE       = var.partitions_start_date
    LOGFIRE_SECRET_NAME         = var.logfire_secret_id
    DAGSTER_HOME                = var.dagster_home
    GCP_REGION                  = var.region
    DAGSTER_COMPUTE_LOGS_BUCKET = var.compute_logs_bucket
  }
}

# ---- webserver -------------------------------------------------------------------

resource "google_cloud_run_v2_service" "webserver" {
  project             = var.project_id
  name                = local.webserver_name
  location            = var.region
  ingress             = var.webserver_ingress
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    service_account                  = var.webserver_service_account_email
    timeout                          = "3600s"
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = var.webserver_min_instances
      max_instance_count = var.webserver_max_instances
    }

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = var.network_name
        subnetwork = var.subnetwork_name
      }
    }

    containers {
      name  = "webserver"
      image = var.image
      args  = ["dagster-webserver", "-h", "0.0.0.0", "-p", "8080", "-w", "workspace.yaml"]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.webserver_cpu
          memory = var.webserver_memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.app_env
        content {
          name  = env.key
          value = env.value
        }
      }

      env {
        name = "DAGSTER_PG_URL"
        value_source {
          secret_key_ref {
            secret  = var.pg_url_secret_id
            version = var.pg_url_secret_version
          }
        }
      }

      # Loading the code location takes a while on a cold start: allow up to 5 minutes.
      startup_probe {
        initial_delay_seconds = 10
        period_seconds        = 10
        timeout_seconds       = 5
        failure_threshold     = 30
        http_get {
          path = "/server_info"
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/server_info"
          port = 8080
        }
      }
    }
  }

  lifecycle {
    # The deploy workflow sets the image; gcloud stamps client/client_version.
    ignore_changes = [client, client_version, template[0].containers[0].image]
  }
}

# Who may call the webserver (Cloud Run IAM). Never allUsers / allAuthenticatedUsers.
resource "google_cloud_run_v2_service_iam_member" "webserver_invokers" {
  for_each = var.webserver_invoker_members

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.webserver.name
  role     = "roles/run.invoker"
  member   = each.value
}

# ---- daemon ------------------------------------------------------------------------

resource "google_cloud_run_v2_worker_pool" "daemon" {
  project             = var.project_id
  name                = local.daemon_name
  location            = var.region
  launch_stage        = "BETA"
  deletion_protection = var.deletion_protection
  labels              = var.labels

  # One daemon exactly: two would double-evaluate sensors and schedules.
  scaling {
    manual_instance_count = 1
  }

  template {
    service_account = var.daemon_service_account_email

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = var.network_name
        subnetwork = var.subnetwork_name
      }
    }

    containers {
      name  = "daemon"
      image = var.image
      args  = ["dagster-daemon", "run", "-w", "workspace.yaml"]

      resources {
        limits = {
          cpu    = var.daemon_cpu
          memory = var.daemon_memory
        }
      }

      dynamic "env" {
        for_each = local.app_env
        content {
          name  = env.key
          value = env.value
        }
      }

      env {
        name = "DAGSTER_PG_URL"
        value_source {
          secret_key_ref {
            secret  = var.pg_url_secret_id
            version = var.pg_url_secret_version
          }
        }
      }

      # The daemon's account may not delete lake objects (GCS authorizes an overwrite as a
      # delete), so its Delta commits write no checkpoint and expire no log; the run
      # worker's commits do (default true there).
      env {
        name  = "STORAGE_CAN_DELETE"
        value = "false"
      }
    }
  }

  lifecycle {
    ignore_changes = [client, client_version, template[0].containers[0].image]
  }
}

# ---- run worker job ------------------------------------------------------------------

resource "google_cloud_run_v2_job" "run_worker" {
  project             = var.project_id
  name                = local.job_name
  location            = var.region
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = var.run_worker_service_account_email
      timeout         = "${var.run_timeout_seconds}s"
      # Dagster owns retries (run retries / op retries); a task retry would re-execute a
      # run that is no longer in STARTING state and fail anyway.
      max_retries = 0

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.network_name
          subnetwork = var.subnetwork_name
        }
      }

      containers {
        name  = "run-worker"
        image = var.image
        # CloudRunRunLauncher replaces these args per run with
        # ["dagster", "api", "execute_run", "<run>"]; the default is a harmless smoke test.
        args = ["dagster", "--version"]

        resources {
          limits = {
            cpu    = var.run_worker_cpu
            memory = var.run_worker_memory
          }
        }

        dynamic "env" {
          for_each = local.app_env
          content {
            name  = env.key
            value = env.value
          }
        }

        env {
          name = "DAGSTER_PG_URL"
          value_source {
            secret_key_ref {
              secret  = var.pg_url_secret_id
              version = var.pg_url_secret_version
            }
          }
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [client, client_version, template[0].template[0].containers[0].image]
  }
}
