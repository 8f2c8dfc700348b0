"""One module per resource; each handler takes (request, registry) and returns a Response."""
