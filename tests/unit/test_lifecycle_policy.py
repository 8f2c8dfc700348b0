import json
from pathlib import Path

import pytest

from chalicelib.lifecycle.policy import Lifecycle, PolicyError, RepositoryPolicy, TagExpiry, parse_policies


def doc(*policies: dict) -> str:
    return json.dumps({"repositories": list(policies)})


def test_full_policy_parses() -> None:
    (policy,) = parse_policies(doc({
        "match": "team/*", "immutable_tags": ["v*"], "keep_newest_tags": 10,
        "expire_untagged_after_days": 7, "expire_tags": [{"match": "pr-*", "after_days": 14.5}],
    }))
    assert policy == RepositoryPolicy("team/*", ("v*",), 10, 7.0, (TagExpiry("pr-*", 14.5),))
    assert policy.has_retention
    assert policy.tag_is_immutable("v1.2") and not policy.tag_is_immutable("latest")


def test_immutable_true_means_every_tag_and_false_none() -> None:
    every, none = parse_policies(doc({"match": "a", "immutable_tags": True}, {"match": "b", "immutable_tags": False}))
    assert every.tag_is_immutable("anything") and not every.has_retention
    assert not none.tag_is_immutable("anything")


def test_first_matching_policy_wins_and_globs_cross_slashes() -> None:
    lifecycle = Lifecycle(policies=parse_policies(doc({"match": "team/app", "keep_newest_tags": 1},
                                                      {"match": "team/*", "keep_newest_tags": 2})))
    assert lifecycle.policy_for("team/app").keep_newest_tags == 1
    assert lifecycle.policy_for("team/a/b").keep_newest_tags == 2
    assert lifecycle.policy_for("other") is None


@pytest.mark.parametrize("text, message", [
    ("not json", "not JSON"),
    ('{"repos": []}', '{"repositories"'),
    (doc({"match": "a", "keep_newest": 3}), "unknown keys ['keep_newest']"),
    (doc({"keep_newest_tags": 3}), "repositories[0].match"),
    (doc({"match": "a", "keep_newest_tags": 0}), "keep_newest_tags"),
    (doc({"match": "a", "keep_newest_tags": True}), "keep_newest_tags"),
    (doc({"match": "a", "expire_untagged_after_days": -1}), "expire_untagged_after_days"),
    (doc({"match": "a", "expire_tags": [{"match": "x"}]}), "expire_tags[0]"),
    (doc({"match": "a", "expire_tags": [{"match": "x", "after_days": None}]}), "after_days"),
    (doc({"match": "a", "immutable_tags": "v*"}), "immutable_tags must be a list"),
])
def test_malformed_documents_are_refused_with_where(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_policies(text)


def test_from_env_reads_scalars_switches_and_the_document(tmp_path: Path) -> None:
    path = tmp_path / "lifecycle.json"
    path.write_text(doc({"match": "*", "immutable_tags": True}))
    lifecycle = Lifecycle.from_env({"BERTH_LIFECYCLE_FILE": str(path), "BERTH_UPLOAD_MAX_AGE_HOURS": "2",
                                    "BERTH_GC_GRACE_HOURS": "0.5", "BERTH_DELETE_BLOBS": "false"})
    assert lifecycle.upload_max_age == 7200 and lifecycle.gc_grace == 1800 and lifecycle.gc_interval == 86400
    assert lifecycle.delete_manifests and not lifecycle.delete_blobs
    assert lifecycle.policy_for("x/y").tag_is_immutable("1")
    assert Lifecycle.from_env({}) == Lifecycle()


@pytest.mark.parametrize("environ, message", [
    ({"BERTH_LIFECYCLE": "{}", "BERTH_LIFECYCLE_FILE": "x"}, "not both"),
    ({"BERTH_DELETE_MANIFESTS": "no"}, "true or false"),
    ({"BERTH_GC_GRACE_HOURS": "soon"}, "number of hours"),
    ({"BERTH_GC_GRACE_HOURS": "-1"}, "at least 0"),
    # The upload record's TTL (7 days) would drop it before the purge removed its bytes.
    ({"BERTH_UPLOAD_MAX_AGE_HOURS": "168"}, "below 168"),
])
def test_bad_environment_is_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Lifecycle.from_env(environ)
