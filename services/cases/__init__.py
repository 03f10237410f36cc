"""Abuse and violence case management (Decree 56/2017/ND-CP, Arts. 25-32)."""
