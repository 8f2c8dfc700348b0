import json

import pytest

from chalicelib.uploads.parts import MAX_PARTS, MAX_SIZE, MIN_PART, MiB, PartPlan
from chalicelib.uploads.verify import uploads_in


@pytest.mark.parametrize(
    "size, part_size, count",
    [(1, MIN_PART, 1), (MIN_PART, MIN_PART, 1), (MIN_PART + 1, MIN_PART, 2),
     (200 * MiB, MIN_PART, 13), (MIN_PART * MAX_PARTS, MIN_PART, MAX_PARTS),
     (MIN_PART * MAX_PARTS + 1, 17 * MiB, 942), (MAX_SIZE, MAX_SIZE // MAX_PARTS, MAX_PARTS)],
)
def test_part_plans_stay_within_s3s_limits(size: int, part_size: int, count: int) -> None:
    plan = PartPlan.for_size(size)
    assert (plan.part_size, plan.count) == (part_size, count)
    assert plan.count <= MAX_PARTS and plan.part_size % MiB == 0
    assert sum(plan.part_length(n) for n in range(1, plan.count + 1)) == size


@pytest.mark.parametrize("size", [0, -5, MAX_SIZE + 1])
def test_impossible_sizes(size: int) -> None:
    with pytest.raises(ValueError):
        PartPlan.for_size(size)


def test_problems_name_missing_wrong_and_extra_parts() -> None:
    plan = PartPlan.for_size(2 * MIN_PART + 7)
    assert plan.problems({1: MIN_PART, 2: MIN_PART, 3: 7}) == {}
    assert plan.problems({1: MIN_PART, 3: 8, 4: 1}) == {"missing": [2], "wrong_size": [3], "extra": [4]}


def test_messages_name_direct_uploads_only() -> None:
    notification = {"Records": [
        {"eventName": "ObjectCreated:CompleteMultipartUpload", "s3": {"object": {"key": "direct/abc"}}},
        {"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "blobs/xyz"}}},
        {"eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": "direct/gone"}}}]}
    assert uploads_in(json.dumps(notification)) == ["abc"]
    assert uploads_in(json.dumps({"berth-verify": "def"})) == ["def"]
    assert uploads_in(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert uploads_in("not json") == [] and uploads_in("[1]") == []
