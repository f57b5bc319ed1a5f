variable "project_id" {
  description = "GCP project of the topic and subscriptions."
  type        = string
}

variable "topic_name" {
  description = "Name of the events topic (the app's PUBSUB_TOPIC)."
  type        = string
  default     = "events"
}

variable "subscription_name" {
  description = "Name of the pull subscription the sensor reads (the app's PUBSUB_SUBSCRIPTION)."
  type        = string
  default     = "events-ingest"
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of the subscription; keep equal to the app's ACK_DEADLINE_SECONDS (default 120)."
  type        = number
  default     = 120

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be between 10 and 600 (Pub/Sub and Settings both enforce it)."
  }
}

variable "message_retention_duration" {
  description = "How long unacked messages are kept on the subscription (max 31 days)."
  type        = string
  default     = "604800s"
}

variable "topic_message_retention" {
  description = "Topic-level retention so subscriptions can seek back in time; null disables it."
  type        = string
  default     = "604800s"
}

variable "dead_letter_retention" {
  description = "Retention of the dead-letter topic and its subscription."
  type        = string
  default     = "2678400s"
}

variable "retry_minimum_backoff" {
  description = "Minimum delay before a nacked or expired message is redelivered."
  type        = string
  default     = "10s"
}

variable "retry_maximum_backoff" {
  description = "Maximum redelivery delay of the exponential backoff."
  type        = string
  default     = "600s"
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key (CMEK) for both topics; null = Google-managed encryption."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels applied to every resource."
  type        = map(string)
  default     = {}
}
