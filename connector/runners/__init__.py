"""What drives the pipeline: scheduled jobs, the CDC subscriber and the sidecar service."""
