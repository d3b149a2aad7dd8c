"""What every Sluice service shares: settings base, logging, errors, health, metrics, HTTP glue.

Nothing here knows about models, features or routes (no business logic).
"""
