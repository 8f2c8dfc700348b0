"""The local mode: the real Lambda handler behind an API Gateway stand-in, on moto."""
