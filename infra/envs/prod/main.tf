# This environment = the stack (modules/stack) with this environment's values: the
# per-deployment variables (variables.tf / tfvars / TF_VAR_*) and what env.tf fixes.
# Add nothing but arguments here; resources belong in the modules.

module "stack" {
  source = "../../modules/stack"

  project_id = var.project_id
  region     = var.region
  image      = var.image

  partitions_start_date = var.partitions_start_date

  sql_tier                = local.sql_tier
  sql_availability_type   = local.sql_availability_type
  sql_retained_backups    = local.sql_retained_backups
  webserver_min_instances = local.webserver_min_instances

  webserver_ingress         = var.webserver_ingress
  webserver_invoker_members = var.webserver_invoker_members
  create_image_repository   = var.create_image_repository
  image_writer_members      = var.image_writer_members
  image_reader_members      = var.image_reader_members
  kms_key_name              = var.kms_key_name
}
