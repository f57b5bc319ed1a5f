# What makes prod prod (terraform plan -var-file=environments/prod.tfvars), with
# backend/prod.gcs.backend at init. Sets exactly the variables of variables.tf's
# "what makes the environment" section, and nothing per deployment.
environment             = "prod"
sql_tier                = "db-custom-2-7680"
sql_availability_type   = "REGIONAL"
sql_retained_backups    = 30
webserver_min_instances = 0
