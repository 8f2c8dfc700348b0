"""The pull-through cache (docs/cache.md): repositories under a configured prefix are pulled
from an upstream registry on first use and served from Berth afterwards."""
