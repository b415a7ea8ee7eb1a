output "job_names" {
  description = "Map of job to its Cloud Scheduler job name."
  value       = { for name, job in google_cloud_scheduler_job.job : name => job.name }
}
