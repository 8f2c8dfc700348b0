"""Retention decisions, boundaries included: N exact, equal timestamps, ages of exactly D days."""

from chalicelib.lifecycle.policy import DAY, RepositoryPolicy, TagExpiry
from chalicelib.lifecycle.retention import ManifestInfo, TagInfo, expired_tags, plan

NOW = 1_000 * DAY


def names(tags: list[TagInfo]) -> list[str]:
    return [t.name for t in tags]


def tag(name: str, created: int, digest: str = "") -> TagInfo:
    return TagInfo(name, digest or f"d-{name}", created)


def test_keep_newest_n_exactly_n_tags_expires_none() -> None:
    tags = [tag(f"t{i}", NOW - i) for i in range(3)]
    assert expired_tags(RepositoryPolicy("*", keep_newest_tags=3), tags, NOW) == []


def test_keep_newest_n_expires_the_older_ones() -> None:
    tags = [tag(f"t{i}", NOW - i) for i in range(5)]
    assert names(expired_tags(RepositoryPolicy("*", keep_newest_tags=3), tags, NOW)) == ["t3", "t4"]


def test_tags_tied_with_the_last_kept_are_kept() -> None:
    # One image pushed as 1.2.3, 1.2, 1 in the same second: nothing orders them, so none goes.
    tags = [tag("new", NOW), tag("1.2.3", NOW - 5), tag("1.2", NOW - 5), tag("1", NOW - 5), tag("old", NOW - 9)]
    assert names(expired_tags(RepositoryPolicy("*", keep_newest_tags=2), tags, NOW)) == ["old"]


def test_tag_pattern_expires_after_d_days_not_at_d_days() -> None:
    policy = RepositoryPolicy("*", expire_tags=(TagExpiry("pr-*", 14),))
    tags = [tag("pr-1", NOW - 14 * DAY), tag("pr-2", NOW - 14 * DAY - 1), tag("main", NOW - 99 * DAY)]
    assert names(expired_tags(policy, tags, NOW)) == ["pr-2"]


def test_rules_combine_a_tag_goes_when_any_rule_expires_it() -> None:
    policy = RepositoryPolicy("*", keep_newest_tags=2, expire_tags=(TagExpiry("pr-*", 1),))
    tags = [tag("pr-9", NOW - 2 * DAY), tag("b", NOW - 3 * DAY), tag("a", NOW - 4 * DAY)]
    assert names(expired_tags(policy, tags, NOW)) == ["a", "pr-9"]


def test_without_an_untagged_rule_no_manifest_expires() -> None:
    policy = RepositoryPolicy("*", keep_newest_tags=1)
    tags = [tag("a", NOW, "m1"), tag("b", NOW - 1, "m2")]
    decided = plan(policy, tags, [ManifestInfo("m1", 0), ManifestInfo("m2", 0)], NOW)
    assert names(decided.tags) == ["b"] and decided.manifests == []


def test_untagged_manifests_expire_after_d_days_since_their_last_push() -> None:
    policy = RepositoryPolicy("*", expire_untagged_after_days=7)
    manifests = [ManifestInfo("tagged", 0), ManifestInfo("exactly", NOW - 7 * DAY),
                 ManifestInfo("older", NOW - 7 * DAY - 1), ManifestInfo("young", NOW - 1)]
    decided = plan(policy, [tag("latest", NOW, "tagged")], manifests, NOW)
    assert [m.digest for m in decided.manifests] == ["older"]


def test_a_manifest_whose_tags_all_expire_is_untagged_in_the_same_pass() -> None:
    policy = RepositoryPolicy("*", keep_newest_tags=1, expire_untagged_after_days=1)
    decided = plan(policy, [tag("new", NOW, "m-new"), tag("old", NOW - 5 * DAY, "m-old")],
                   [ManifestInfo("m-new", NOW - 5 * DAY), ManifestInfo("m-old", NOW - 5 * DAY)], NOW)
    assert names(decided.tags) == ["old"] and [m.digest for m in decided.manifests] == ["m-old"]


def test_children_of_a_kept_index_and_referrers_of_a_kept_subject_stay() -> None:
    policy = RepositoryPolicy("*", expire_untagged_after_days=1)
    old = NOW - 9 * DAY
    manifests = [ManifestInfo("index", old, children=("amd64", "arm64")), ManifestInfo("amd64", old),
                 ManifestInfo("arm64", old), ManifestInfo("sig", old, subject="index"),
                 ManifestInfo("sig-of-sig", old, subject="sig"), ManifestInfo("orphan-sig", old, subject="gone")]
    decided = plan(policy, [tag("latest", NOW, "index")], manifests, NOW)
    assert [m.digest for m in decided.manifests] == ["orphan-sig"]


def test_expired_manifests_come_after_what_would_have_kept_them() -> None:
    policy = RepositoryPolicy("*", expire_untagged_after_days=1)
    old = NOW - 9 * DAY
    manifests = [ManifestInfo("a-child", old), ManifestInfo("z-index", old, children=("a-child",)),
                 ManifestInfo("b-sig", old, subject="a-child"), ManifestInfo("shared", old),
                 ManifestInfo("young-index", NOW, children=("shared",))]
    decided = plan(policy, [], manifests, NOW)
    assert [m.digest for m in decided.manifests] == ["z-index", "a-child", "b-sig"]
    assert decided.parents == {"z-index": set(), "a-child": {"z-index"}, "b-sig": {"a-child"}}
