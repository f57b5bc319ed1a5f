# State lives in a GCS bucket created once by hand (see infra/README.md), one state per
# environment; the bucket and prefix come from backend/<env>.gcs.backend:
#   terraform init -reconfigure -backend-config=backend/<env>.gcs.backend
terraform {
  backend "gcs" {}
}
