"""`make deploy` and `make destroy` (docs/deploy.md): the storage stack, the stage's config and
IAM policies, the merge template for what Chalice cannot say, packaging, and the app stack."""
