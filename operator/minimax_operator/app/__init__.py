"""Assembly: the command line, the operator's wiring, and kopf's handlers (kopf is imported here only)."""
