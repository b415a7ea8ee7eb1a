output "function_urls" {
  description = "Map of function name to its HTTPS URL; post_entry and query are the ledger API."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.url }
}

output "service_uris" {
  description = "Map of function name to the run.app URI of its Cloud Run service (what Cloud Scheduler calls and the OIDC audience)."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].uri }
}

output "service_names" {
  description = "Map of function name to the full name of its Cloud Run service (for invoker bindings)."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].service }
}

output "source_bucket" {
  description = "Bucket holding the source archives."
  value       = google_storage_bucket.sources.name
}

output "source_objects" {
  description = "Map of function name to the deployed source object, <name>/<sha256>.zip (what a rollback points back at)."
  value       = { for name, object in google_storage_bucket_object.source : name => object.name }
}

output "scheduled_functions" {
  description = "The functions that are jobs for Cloud Scheduler, not public API."
  value       = local.scheduled_functions
}

output "arus_placements" {
  description = "The functions' ARUS_PLACEMENTS: name=<instance connection name> for every placement, comma separated, in order."
  value       = local.arus_placements
}
