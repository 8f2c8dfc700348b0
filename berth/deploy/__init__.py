"""Deployment helpers: CloudFormation that Chalice does not generate."""
