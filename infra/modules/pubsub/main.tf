# Topic -> pull subscription (the Dagster sensor pulls) -> dead-letter topic.
# Pull only: there is deliberately no push_config and no Eventarc trigger.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "events" {
  project                    = var.project_id
  name                       = var.topic_name
  kms_key_name               = var.kms_key_name
  message_retention_duration = var.topic_message_retention
  labels                     = var.labels
}

resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.topic_name}-dead-letter"
  kms_key_name               = var.kms_key_name
  message_retention_duration = var.dead_letter_retention
  labels                     = var.labels
}

resource "google_pubsub_subscription" "ingest" {
  project = var.project_id
  name    = var.subscription_name
  topic   = google_pubsub_topic.events.id
  labels  = var.labels

  # Must equal the app's ACK_DEADLINE_SECONDS: the sensor acks only after the batch is
  # durably landed, and a round plus its landing must fit in this deadline.
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.message_retention_duration
  retain_acked_messages      = false
  enable_message_ordering    = false

  # Never expire the subscription for inactivity (the default is 31 days).
  expiration_policy {
    ttl = ""
  }

  # Redelivery of nacked / expired messages backs off exponentially.
  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

# Pull subscription on the dead-letter topic, so dead letters are kept and can be
# inspected or re-published (a topic without a subscription drops messages).
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.subscription_name}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering needs the Pub/Sub service agent to publish to the dead-letter topic
# and to acknowledge (subscribe) on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.ingest.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
