# The event-assets stack: every resource of one environment, composed from the modules next
# to this one. The root infra/live calls it once (module "stack") per environment, with that
# environment's values; nothing here knows which environment it is.

locals {
  bucket_name              = coalesce(var.bucket_name, "${var.project_id}-event-assets-lake")
  compute_logs_bucket_name = coalesce(var.compute_logs_bucket_name, "${var.project_id}-event-assets-dagster-logs")
}

resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "network" {
  source = "../network"

  project_id  = var.project_id
  region      = var.region
  name_prefix = var.name_prefix

  depends_on = [google_project_service.apis]
}

module "storage" {
  source = "../storage"

  project_id               = var.project_id
  bucket_name              = local.bucket_name
  compute_logs_bucket_name = local.compute_logs_bucket_name
  location                 = var.region
  landing_retention_days   = var.landing_retention_days
  kms_key_name             = var.kms_key_name

  depends_on = [google_project_service.apis]
}

module "pubsub" {
  source = "../pubsub"

  project_id           = var.project_id
  topic_name           = var.pubsub_topic
  subscription_name    = var.pubsub_subscription
  ack_deadline_seconds = var.ack_deadline_seconds
  kms_key_name         = var.kms_key_name

  depends_on = [google_project_service.apis]
}

# One image repository can serve both environments (deploy.yml's IMAGE_REPOSITORY): create
# it in one env and grant the other project's Cloud Run service agent through
# image_reader_members; set create_image_repository = false there.
module "artifact_registry" {
  source = "../artifact_registry"
  count  = var.create_image_repository ? 1 : 0

  project_id     = var.project_id
  location       = var.region
  kms_key_name   = var.kms_key_name
  writer_members = var.image_writer_members
  reader_members = var.image_reader_members

  depends_on = [google_project_service.apis]
}

module "cloud_sql" {
  source = "../cloud_sql"

  project_id          = var.project_id
  region              = var.region
  instance_name       = "${var.name_prefix}-dagster"
  tier                = var.sql_tier
  availability_type   = var.sql_availability_type
  retained_backups    = var.sql_retained_backups
  deletion_protection = true
  network_id          = module.network.network_id

  # Private IP needs the private services access connection first.
  depends_on = [module.network]
}

module "secrets" {
  source = "../secrets"

  project_id     = var.project_id
  region         = var.region
  dagster_pg_url = module.cloud_sql.database_url
  accessor_members = {
    webserver  = module.iam.webserver_service_account_member
    daemon     = module.iam.daemon_service_account_member
    run_worker = module.iam.run_worker_service_account_member
  }

  depends_on = [google_project_service.apis]
}

# The single runtime account of earlier versions is the run worker's now (modules/iam): its
# secret bindings keep their resources too.
moved {
  from = module.secrets.google_secret_manager_secret_iam_member.logfire_token_accessors["runtime"]
  to   = module.secrets.google_secret_manager_secret_iam_member.logfire_token_accessors["run_worker"]
}

moved {
  from = module.secrets.google_secret_manager_secret_iam_member.dagster_pg_url_accessors["runtime"]
  to   = module.secrets.google_secret_manager_secret_iam_member.dagster_pg_url_accessors["run_worker"]
}

module "iam" {
  source = "../iam"

  project_id               = var.project_id
  region                   = var.region
  name_prefix              = var.name_prefix
  lake_bucket_name         = module.storage.bucket_name
  compute_logs_bucket_name = module.storage.compute_logs_bucket_name
  subscription_name        = module.pubsub.subscription_name
  sql_instance_name        = module.cloud_sql.instance_name
  run_worker_job_name      = module.cloud_run.run_worker_job_name
  webserver_service_name   = module.cloud_run.webserver_service_name
  daemon_worker_pool_name  = module.cloud_run.daemon_worker_pool_name

  depends_on = [google_project_service.apis]
}

module "cloud_run" {
  source = "../cloud_run"

  project_id      = var.project_id
  region          = var.region
  name_prefix     = var.name_prefix
  image           = var.image
  network_name    = module.network.network_name
  subnetwork_name = module.network.subnetwork_name

  # Each workload runs as its own account (modules/iam).
  webserver_service_account_email  = module.iam.webserver_service_account_email
  daemon_service_account_email     = module.iam.daemon_service_account_email
  run_worker_service_account_email = module.iam.run_worker_service_account_email

  lake_uri              = module.storage.lake_uri
  pubsub_topic          = module.pubsub.topic_name
  pubsub_subscription   = module.pubsub.subscription_name
  ack_deadline_seconds  = module.pubsub.ack_deadline_seconds
  max_message_bytes     = var.max_message_bytes
  pull_max_messages     = var.pull_max_messages
  decode_workers        = var.decode_workers
  partitions_start_date = var.partitions_start_date
  compute_logs_bucket   = module.storage.compute_logs_bucket_name
  logfire_secret_id     = module.secrets.logfire_secret_id
  pg_url_secret_id      = module.secrets.pg_url_secret_id
  pg_url_secret_version = module.secrets.pg_url_secret_version

  webserver_ingress         = var.webserver_ingress
  webserver_invoker_members = var.webserver_invoker_members
  webserver_min_instances   = var.webserver_min_instances

  # Revisions fail to start if their accounts cannot read the secrets yet.
  depends_on = [module.secrets, google_project_service.apis]
}
