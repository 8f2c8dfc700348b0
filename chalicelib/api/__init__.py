"""HTTP side of the registry: routes, headers, errors."""
