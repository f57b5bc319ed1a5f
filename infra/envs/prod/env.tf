# What makes prod prod: main.tf passes these to modules/stack (environment is the
# provider's default label, versions.tf). Everything else is shared with envs/dev.
locals {
  environment             = "prod"
  sql_tier                = "db-custom-2-7680"
  sql_availability_type   = "REGIONAL"
  sql_retained_backups    = 30
  webserver_min_instances = 0
}
