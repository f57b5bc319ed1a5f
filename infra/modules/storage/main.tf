# The lake bucket: Delta tables, the landing zone and the quarantine table live under
# gs://<bucket>/<lake_prefix>/ (LAKE_URI).

locals {
  lake_uri = "gs://${google_storage_bucket.lake.name}/${var.lake_prefix}"
  # Only merged batches expire: the merge moves a batch from landing/_pending/ to
  # landing/_merged/, so a batch that is not merged (its run keeps failing) is never
  # deleted by age. The age counts from the move (a copy on GCS).
  merged_prefix = "${var.lake_prefix}/landing/_merged/"
}

resource "google_storage_bucket" "lake" {
  # checkov:skip=CKV_GCP_62: legacy usage/storage logs need a second bucket; object access is audited with Cloud Audit Logs (Data Access) at project level instead.
  project                     = var.project_id
  name                        = var.bucket_name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Only the run worker's account may delete or overwrite lake objects (modules/iam: the
  # webserver reads, the daemon only creates). Soft delete keeps a compromised run worker from
  # destroying data for good: a deleted or overwritten object stays restorable this long
  # (permanent deletion needs the bucket's soft delete changed first, which no workload
  # identity may do); noncurrent versions (below) keep history longer.
  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * 86400
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  # Landing batches are the raw log that backfills re-merge; after N days they are
  # dropped (the merged rows stay in the Delta table).
  lifecycle_rule {
    condition {
      age            = var.landing_retention_days
      matches_prefix = [local.merged_prefix]
    }
    action {
      type = "Delete"
    }
  }

  # Versioning keeps overwritten/deleted objects (Delta vacuum deletes files); purge
  # those noncurrent versions after a grace period so storage does not grow forever.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# stdout/stderr of Dagster steps (GCSComputeLogManager in deploy/dagster.yaml,
# DAGSTER_COMPUTE_LOGS_BUCKET). Separate from the lake: different retention, and no
# versioning, because partial logs are re-uploaded every 30 s.
resource "google_storage_bucket" "compute_logs" {
  # checkov:skip=CKV_GCP_62: legacy usage/storage logs need a second bucket; object access is audited with Cloud Audit Logs (Data Access) at project level instead.
  # checkov:skip=CKV_GCP_78: the compute log manager overwrites each log every 30 s while a step runs; versioning would keep every partial copy, and these are diagnostics, not data.
  project                     = var.project_id
  name                        = var.compute_logs_bucket_name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle_rule {
    condition {
      age = var.compute_logs_retention_days
    }
    action {
      type = "Delete"
    }
  }
}
