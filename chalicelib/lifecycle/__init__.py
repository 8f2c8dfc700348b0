"""Storage lifecycle: retention rules, immutable tags, upload purge, garbage collection."""
