"""The head's Ray Client server: `proxier.py` (the listening process) and `session.py` (one
driver process per connected client)."""
