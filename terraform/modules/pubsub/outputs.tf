output "topic_id" {
  description = "Full name of the events topic, projects/<project>/topics/<name> (the functions' ARUS_PUBSUB_TOPIC)."
  value       = google_pubsub_topic.events.id
}

output "topic_name" {
  description = "Short name of the events topic."
  value       = google_pubsub_topic.events.name
}

output "dead_letter_topic_id" {
  description = "Full name of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.id
}

output "example_subscription_id" {
  description = "Full name of the example ordered consumer subscription."
  value       = google_pubsub_subscription.example.id
}

output "dead_letter_subscription_id" {
  description = "Full name of the subscription that keeps dead-lettered messages."
  value       = google_pubsub_subscription.dead_letter.id
}
