"""The gateway: the one public entry, identity and tokens."""
