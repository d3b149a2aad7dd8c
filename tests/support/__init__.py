"""Helpers the integration and e2e tiers share: free ports, real processes, real Redis."""
