output "function_service_account_emails" {
  description = "Map of function name to the email of its own runtime service account."
  value       = { for name, account in google_service_account.function : name => account.email }
}

output "scheduler_service_account_email" {
  description = "Email of the service account Cloud Scheduler uses to sign OIDC tokens."
  value       = google_service_account.scheduler.email
}

output "build_service_account_id" {
  description = "Full resource name (projects/<project>/serviceAccounts/<email>) of the build service account."
  value       = google_service_account.build.id
}

output "build_service_account_email" {
  description = "Email of the build service account."
  value       = google_service_account.build.email
}
