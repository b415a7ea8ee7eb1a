# The ledger's event stream on Pub/Sub (SPEC §4): the relay publishes every outbox event to
# arus-<env>-ledger-events with ordering key = ledger_id. Ordering and dead-lettering are settings
# of a subscription, so this module also creates an example consumer subscription with both,
# and a dead-letter topic with a subscription that keeps what lands there.

locals {
  # Pub/Sub's service agent moves undeliverable messages to the dead-letter topic. The project
  # number is passed in: a data source read here would be deferred to apply time whenever the
  # stack's depends_on has pending changes, leaving this member unknown and both grants below
  # planned for replacement.
  pubsub_service_agent = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest; the events carry ledger data that is already in Cloud SQL under Google-managed keys, and a CMEK key ring is an opt-in for a deployment with a key-management policy (docs/runbook-cloud-run.md).
  project                    = var.project_id
  name                       = var.topic_name
  message_retention_duration = var.topic_message_retention

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Same as the events topic: Google-managed encryption at rest.
  project                    = var.project_id
  name                       = "${var.topic_name}-dead-letter"
  message_retention_duration = var.topic_message_retention

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

# An example consumer: a pull subscription that receives each ledger's events in ledger_seq
# order and moves a message that fails max_delivery_attempts deliveries to the dead-letter
# topic. Consumers dedupe by event_id (delivery is at least once).
resource "google_pubsub_subscription" "example" {
  project = var.project_id
  name    = "${var.topic_name}-example"
  topic   = google_pubsub_topic.events.id

  enable_message_ordering    = true
  ack_deadline_seconds       = 60
  message_retention_duration = var.subscription_message_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = "" # never expires for inactivity
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

# Messages published to a topic with no subscription are dropped: this one keeps dead letters
# for inspection and replay.
resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.topic_name}-dead-letter-sub"
  topic   = google_pubsub_topic.dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering needs the Pub/Sub service agent to publish to the dead-letter topic and to
# subscribe (acknowledge) on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "example_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.example.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent

  lifecycle {
    # A subscription replaced under the same name drops its policy: grant it again with it. The
    # id changes only on replacement; naming the resource would also replace the grant on every
    # in-place update (a new ack deadline, a retry policy).
    replace_triggered_by = [google_pubsub_subscription.example.id]
  }
}
