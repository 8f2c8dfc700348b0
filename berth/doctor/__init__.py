"""`berth doctor URL` (docs/deploy.md): checks a registry from outside, the way clients and AWS
will use it, and says per check what it saw and what to do. Right after `make deploy`, it
confirms what only a live stage can; in CI it runs against the local mode."""
