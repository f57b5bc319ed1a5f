# The one root of every environment: the stack (modules/stack) with the values of the
# environment it is run for. What makes the environment comes from
# environments/<env>.tfvars (-var-file), the per-deployment variables from TF_VAR_* (CI) or a
# git-ignored environments/<env>.local.tfvars; the state from backend/<env>.gcs.backend.
# Add nothing but arguments here; resources belong in the modules.

module "stack" {
  source = "../modules/stack"

  project_id = var.project_id
  region     = var.region
  image      = var.image

  partitions_start_date = var.partitions_start_date

  sql_tier                = var.sql_tier
  sql_availability_type   = var.sql_availability_type
  sql_retained_backups    = var.sql_retained_backups
  webserver_min_instances = var.webserver_min_instances

  webserver_ingress         = var.webserver_ingress
  webserver_invoker_members = var.webserver_invoker_members
  create_image_repository   = var.create_image_repository
  image_writer_members      = var.image_writer_members
  image_reader_members      = var.image_reader_members
  kms_key_name              = var.kms_key_name
}
