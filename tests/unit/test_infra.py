"""infra/registry.yaml: valid CloudFormation, and the storage the code expects."""

from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "registry.yaml"


def test_template_passes_cfn_lint() -> None:
    from cfnlint.api import lint_file

    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_bucket_is_private_encrypted_and_aborts_stale_multipart_uploads() -> None:
    from cfnlint.decode import decode_str

    template, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    bucket = template["Resources"]["Blobs"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert "VersioningConfiguration" not in bucket  # deleted blobs must stop costing money
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and "AbortIncompleteMultipartUpload" in rule
    table = template["Resources"]["Metadata"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [("pk", "HASH"), ("sk", "RANGE")]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
