# State lives in a GCS bucket created once by hand (see infra/README.md); its name and
# prefix come from backend/<env>.gcs.backend:
#   terraform init -backend-config=backend/<env>.gcs.backend
terraform {
  backend "gcs" {}
}
