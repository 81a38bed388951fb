"""Stage runtime: the consume → process → publish → commit loop, metrics and health endpoints."""
