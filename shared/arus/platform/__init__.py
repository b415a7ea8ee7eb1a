"""The platform layer: settings read once, database engines, Cloud SQL, Secret Manager, logs."""
