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

output "grant_ids" {
  description = "Ids of every grant this module makes: the stack waits for IAM to propagate them (and again when one is replaced) before deploying the functions."
  value = concat(
    [for grant in google_project_iam_member.cloudsql_client : grant.id],
    [for grant in google_project_iam_member.trace_agent : grant.id],
    [for grant in google_secret_manager_secret_iam_member.login_password_accessor : grant.id],
    [for grant in google_pubsub_topic_iam_member.events_publisher : grant.id],
    [google_project_iam_member.build_log_writer.id, google_project_iam_member.build_function_sources.id],
  )
}
