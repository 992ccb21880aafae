"""Pulumi program: the cloud resources behind the data pipeline."""
