"""Operator commands: status, explain, errors, insights, reports, rules test, forget, demo, progress, config doc."""
