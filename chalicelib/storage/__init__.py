"""S3 and DynamoDB, each behind one small class."""
