"""Client side of keyless access: credentials made on demand (an OIDC ID token from the CI
provider, a signed STS request from AWS credentials) or kept (a CI token), the docker
credential helper that hands them out, and the docker config entry that names it."""
