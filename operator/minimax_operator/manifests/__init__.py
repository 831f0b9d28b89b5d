"""Generated manifests from their one source: the CRDs from the API types, the chart's RBAC rules,
the tenancy admission policy, and docs/reference.md (`make manifests`)."""
