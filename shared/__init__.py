"""Code both the Pulumi program (infra/) and the service (services/data_pipeline/) import."""
