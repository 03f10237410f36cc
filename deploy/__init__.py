"""Deployment: the container entry points (serve, migrate, healthcheck), compose and Kubernetes files."""
