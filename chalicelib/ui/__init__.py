"""The web pages at /ui/ (docs/ui.md): server-rendered, served by the registry's own Lambda.

Only the methods API Gateway routes here live in this module: app.py imports the pages on the
first request for one, so registry requests never pay for loading them."""

METHODS = ["GET", "HEAD", "POST"]
