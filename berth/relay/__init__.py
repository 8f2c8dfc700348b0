"""`berth relay`: a registry on the user's machine or CI runner that any stock client pushes to
and pulls through, forwarding everything to an upstream Berth with the client's credentials.
Blob uploads it takes itself, spooled to a temporary file, and delivers upstream with
berth.client: layers too large for one request to a Lambda go straight to S3. See
docs/relay.md."""
