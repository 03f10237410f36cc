"""The kit shared by every service. It imports no service."""
