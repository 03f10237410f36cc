"""The child-protection backend services."""
