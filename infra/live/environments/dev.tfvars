# What makes dev dev (terraform plan -var-file=environments/dev.tfvars), with
# backend/dev.gcs.backend at init. Sets exactly the variables of variables.tf's
# "what makes the environment" section, and nothing per deployment.
environment             = "dev"
sql_tier                = "db-custom-1-3840"
sql_availability_type   = "ZONAL"
sql_retained_backups    = 7
webserver_min_instances = 0
