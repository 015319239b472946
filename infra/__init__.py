"""Deployment description helpers and the local stack (moto server + event pump)."""
