"""Blob uploads: state, chunk planning, and the service that runs them."""
