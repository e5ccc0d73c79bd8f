"""Schedules: definitions from configuration (config.py) and their durable state (state.py)."""
