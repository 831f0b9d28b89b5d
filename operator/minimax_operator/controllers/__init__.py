"""One reconciler per kind, and what they share: ownership, ChatOS registration, the watches, upgrades.

Each reconcile observes (reads from the stores into values), decides (pure functions
of those values, unit-tested: server.py, download.py, claims.py) and acts (writes).
"""
