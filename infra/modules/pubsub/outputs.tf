output "topic_name" {
  description = "Short name of the events topic (PUBSUB_TOPIC)."
  value       = google_pubsub_topic.events.name
}

output "topic_id" {
  description = "Full id of the events topic."
  value       = google_pubsub_topic.events.id
}

output "subscription_name" {
  description = "Short name of the ingest subscription (PUBSUB_SUBSCRIPTION)."
  value       = google_pubsub_subscription.ingest.name
}

output "subscription_id" {
  description = "Full id of the ingest subscription."
  value       = google_pubsub_subscription.ingest.id
}

output "ack_deadline_seconds" {
  description = "Ack deadline of the ingest subscription (ACK_DEADLINE_SECONDS)."
  value       = google_pubsub_subscription.ingest.ack_deadline_seconds
}

output "dead_letter_topic_name" {
  description = "Name of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription_name" {
  description = "Name of the pull subscription on the dead-letter topic."
  value       = google_pubsub_subscription.dead_letter.name
}
