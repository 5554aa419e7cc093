"""The keys that are not grid axes: name, model, request options, run limits.

Owns: the job name (default: the file's stem), the model id, `system_instruction`,
`safety_settings`, `tools`, `budget`, `pricing`, `rpm` and `transport`. Must not
know the grid (prompts, axes, references, exclude/include) or generationConfig
(`generation`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from runner.pricing import PRICE_KEYS
from runner.spec.messages import show
from runner.spec.nodes import given, is_null
from runner.spec.types import (
    DEFAULT_MODEL,
    DEFAULT_TRANSPORT,
    NAME_RULE,
    TRANSPORTS,
    Budget,
    valid_name,
)

if TYPE_CHECKING:
    from pathlib import Path

    from runner.spec.nodes import NodeReader

BUDGET_KEYS = ("max_requests", "max_images", "max_cost_usd")
# A model id, without 'models/': also the JSON Schema's pattern.
MODEL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"


def read_name(nodes: NodeReader, node: yaml.Node | None, path: Path) -> str:
    if node is None:
        stem = path.stem
        if valid_name(stem):
            return stem
        suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
        suggestion = re.sub(r"\.{2,}", ".", suggestion).strip("-._")[:100]
        raise nodes.fail(
            f"the job name defaults to the file name {show(stem)}, which cannot "
            f"name an output folder ({NAME_RULE}); add a line "
            f"'name: {suggestion or 'my-job'}' to the job file"
        )
    name = nodes.text(node, "name")
    if not valid_name(name):
        raise nodes.fail(
            f"name {show(name)} cannot name an output folder; use {NAME_RULE}",
            node,
        )
    return name


def read_model(nodes: NodeReader, node: yaml.Node | None) -> str:
    if node is None:
        return DEFAULT_MODEL
    model = nodes.text(node, "model")
    if model.startswith("models/") and _MODEL_RE.fullmatch(model[7:]):
        raise nodes.fail(
            f"model {show(model)}: write the model id without 'models/', "
            f"e.g. '{model[7:]}'",
            node,
        )
    if not _MODEL_RE.fullmatch(model):
        raise nodes.fail(
            f"model {show(model)} is not a model id; use letters, digits, '.', "
            f"'_' and '-' only, e.g. '{DEFAULT_MODEL}'",
            node,
        )
    return model


def read_system_instruction(nodes: NodeReader, node: yaml.Node | None) -> str | None:
    if node is None:
        return None
    text = nodes.text(node, "system_instruction")
    if not text.strip():
        raise nodes.fail(
            "system_instruction is empty; write the instruction or remove the key",
            node,
        )
    return text


def read_safety_settings(
    nodes: NodeReader, node: yaml.Node | None
) -> tuple[dict[str, Any], ...] | None:
    if node is None:
        return None
    if not isinstance(node, yaml.SequenceNode):
        raise nodes.fail(
            "safety_settings must be a list of {category, threshold} mappings, "
            f"got {given(node)}",
            node,
        )
    settings: list[dict[str, Any]] = []
    for item in node.value:
        if not isinstance(item, yaml.MappingNode):
            raise nodes.fail(
                "each safety_settings entry must be a mapping like "
                "{category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_NONE}, "
                f"got {given(item)}",
                item,
            )
        settings.append(nodes.plain(item, "safety_settings"))
    return tuple(settings)


def read_tools(
    nodes: NodeReader, node: yaml.Node | None
) -> tuple[dict[str, Any], ...] | None:
    """The request's `tools`, passed through as written; [] means none."""
    if node is None:
        return None
    example = "e.g. 'tools: [{google_search: {}}]'"
    if not isinstance(node, yaml.SequenceNode):
        raise nodes.fail(
            f"tools must be a list of tool mappings, {example}, got {given(node)}",
            node,
        )
    tools: list[dict[str, Any]] = []
    for item in node.value:
        if not isinstance(item, yaml.MappingNode) or not item.value:
            got = "an empty mapping" if isinstance(item, yaml.MappingNode) else None
            raise nodes.fail(
                "each tools entry must be a mapping that names one tool, "
                f"{example}, got {got or given(item)}",
                item,
            )
        tools.append(nodes.plain(item, "tools"))
    return tuple(tools) or None


def read_budget(nodes: NodeReader, node: yaml.Node | None) -> Budget:
    if node is None:
        return Budget()
    if not isinstance(node, yaml.MappingNode):
        raise nodes.fail(
            "budget must be a mapping, e.g. 'budget: {max_requests: 500}', "
            f"got {given(node)}",
            node,
        )
    limits: dict[str, Any] = {}
    for key, key_node, value_node in nodes.pairs(node):
        if key not in BUDGET_KEYS:
            raise nodes.unknown_key(key, key_node, BUDGET_KEYS, "budget key")
        if is_null(value_node):
            continue
        if key == "max_cost_usd":
            limits[key] = nodes.number(value_node, f"budget.{key}", positive=False)
        else:
            limits[key] = nodes.whole_number(value_node, f"budget.{key}", 0, None)
    return Budget(**limits)


def read_pricing(nodes: NodeReader, node: yaml.Node | None) -> dict[str, float] | None:
    if node is None:
        return None
    if not isinstance(node, yaml.MappingNode):
        raise nodes.fail(
            "pricing must be a mapping of USD per million tokens, e.g. "
            "'pricing: {output_image_per_million: 60}', "
            f"got {given(node)}",
            node,
        )
    prices: dict[str, float] = {}
    for key, key_node, value_node in nodes.pairs(node):
        if key not in PRICE_KEYS:
            raise nodes.unknown_key(key, key_node, PRICE_KEYS, "pricing key")
        prices[key] = nodes.number(value_node, f"pricing.{key}", positive=False)
    return prices


def read_rpm(nodes: NodeReader, node: yaml.Node | None) -> float | None:
    if node is None:
        return None
    return nodes.number(node, "rpm (requests per minute)", positive=True)


def read_transport(nodes: NodeReader, node: yaml.Node | None) -> str:
    if node is None:
        return DEFAULT_TRANSPORT
    transport = nodes.text(node, "transport")
    if transport not in TRANSPORTS:
        raise nodes.fail(
            f"transport {show(transport)} is not one of {', '.join(TRANSPORTS)}; "
            "write 'transport: batch' to send through the Batch API at half price, "
            "or leave the key out",
            node,
        )
    return transport


_MODEL_RE = re.compile(MODEL_PATTERN)
