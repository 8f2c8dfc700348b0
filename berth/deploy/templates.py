"""CloudFormation YAML as data: the short-form tags (`!Ref`, `!GetAtt`, `!Sub`...) become the
JSON forms CloudFormation also accepts, so a template can be read, trimmed and sent as JSON."""

from __future__ import annotations

from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)  # !GetAtt Blobs.Arn
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _intrinsic)


def load(text: str) -> dict[str, Any]:
    return dict(yaml.load(text, Loader=_Loader))  # a SafeLoader, with CloudFormation's tags
