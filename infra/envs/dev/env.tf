# What makes dev dev: main.tf passes these to modules/stack (environment is the
# provider's default label, versions.tf). Everything else is shared with envs/prod.
locals {
  environment             = "dev"
  sql_tier                = "db-custom-1-3840"
  sql_availability_type   = "ZONAL"
  sql_retained_backups    = 7
  webserver_min_instances = 0
}
