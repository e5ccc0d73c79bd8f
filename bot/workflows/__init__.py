"""Workflows: definitions (load, validate, version), the durable runner and LIFO rollback."""
