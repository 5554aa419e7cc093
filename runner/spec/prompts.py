"""The `prompts:` list and the `vars:` its placeholders draw from.

Owns: prompt ids (given or p1, p2, ...), prompt text, the placeholders each prompt
uses (each must be a declared var), var names and their distinct values, and the
warning for a var no prompt uses. Must not expand the grid: `runner.plan` does.
"""

from __future__ import annotations

import difflib
from functools import partial
from typing import TYPE_CHECKING

import yaml

from runner.errors import JobSpecError
from runner.spec.messages import show
from runner.spec.nodes import given, is_null, line_in, line_of
from runner.spec.templates import TemplateError, scan_template
from runner.spec.types import MATRIX_AXIS_KEYS, NAME_RULE, Prompt, valid_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.spec.nodes import NodeReader

PROMPT_KEYS = ("id", "text")


def read_vars(
    nodes: NodeReader, node: yaml.Node | None
) -> tuple[dict[str, tuple[str, ...]], dict[str, yaml.Node]]:
    """Each var's values, and its key node (for warnings about its use)."""
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode):
        raise nodes.fail(
            "vars must be a mapping of var name to a list of values, e.g. "
            f"'vars: {{style: [flat, 3D]}}', got {given(node)}",
            node,
        )
    values: dict[str, tuple[str, ...]] = {}
    key_nodes: dict[str, yaml.Node] = {}
    for var, key_node, value_node in nodes.pairs(node):
        # A var with a problem keeps its name, so prompts that use it are fine.
        values[var] = nodes.attempt(
            partial(_var_values, nodes, var, key_node, value_node), ()
        )
        key_nodes[var] = key_node
    return values, key_nodes


def _var_values(
    nodes: NodeReader, var: str, key_node: yaml.Node, value_node: yaml.Node
) -> tuple[str, ...]:
    if not var.isidentifier():
        raise nodes.fail(
            f"var name {show(var)} cannot be a placeholder; use letters, "
            "digits and '_', not starting with a digit",
            key_node,
        )
    if var in MATRIX_AXIS_KEYS:
        raise nodes.fail(
            f"var name '{var}' is taken by an exclude/include key; rename the var",
            key_node,
        )
    if isinstance(value_node, yaml.SequenceNode) and not value_node.value:
        raise nodes.fail(
            f"var '{var}' has an empty list; give at least one value or remove the var",
            value_node,
        )
    seen: dict[str, int | None] = {}
    for item in nodes.items(value_node):
        if not isinstance(item, yaml.ScalarNode):
            raise nodes.fail(
                f"values of var '{var}' must be text or numbers, got {given(item)}",
                item,
            )
        if is_null(item):
            raise nodes.fail(
                f"var '{var}' has an empty value; write '\"\"' if you mean "
                "empty text, or remove it",
                item,
            )
        text = str(item.value)
        if text in seen:
            raise nodes.fail(
                f"var '{var}' lists {show(text)} twice (first on line "
                f"{seen[text]}); remove one",
                item,
            )
        seen[text] = line_of(item)
    return tuple(seen)


def read_prompts(
    nodes: NodeReader, node: yaml.Node, vars_: Mapping[str, tuple[str, ...]] | None
) -> tuple[Prompt, ...]:
    """The prompts; `vars_` None when `vars:` itself could not be read (then a
    placeholder is not checked against it). A prompt with a problem is noted and
    left out, and reading goes on with the next."""
    if isinstance(node, yaml.MappingNode):
        raise nodes.fail(
            "prompts must be a list of prompts (text, or 'id:' and 'text:' "
            "pairs, each on a '- ' line), got a mapping",
            node,
        )
    items = nodes.items(node)
    if not items:
        raise nodes.fail("prompts is empty; add at least one prompt", node)
    prompts: list[Prompt] = []
    seen: dict[str, int | None] = {}
    for position, item in enumerate(items, start=1):
        prompt = nodes.attempt(
            partial(_prompt, nodes, position, item, seen, vars_), None
        )
        if prompt is not None:
            prompts.append(prompt)
    return tuple(prompts)


def _prompt(
    nodes: NodeReader,
    position: int,
    item: yaml.Node,
    seen: dict[str, int | None],
    vars_: Mapping[str, tuple[str, ...]] | None,
) -> Prompt:
    """One prompt; adds its id to `seen` (ids met so far, with their lines)."""
    prompt_id, id_node, text_node = f"p{position}", item, item
    if isinstance(item, yaml.MappingNode):
        text_found = None
        for key, key_node, value_node in nodes.pairs(item):
            if key == "id":
                prompt_id = nodes.text(value_node, "a prompt id")
                id_node = value_node
                if not valid_name(prompt_id):
                    raise nodes.fail(
                        f"prompt id {show(prompt_id)} cannot be used in file "
                        f"names; use {NAME_RULE}",
                        value_node,
                    )
            elif key == "text":
                text_found = value_node
            else:
                raise nodes.unknown_key(key, key_node, PROMPT_KEYS, "prompt key")
        if text_found is None:
            raise nodes.fail(
                f"prompt {position} has no 'text:'; add the prompt text", item
            )
        text_node = text_found
    elif not isinstance(item, yaml.ScalarNode):
        raise nodes.fail(
            "each prompt must be text, or a mapping with 'id:' and 'text:', "
            f"got {given(item)}",
            item,
        )
    text = nodes.text(text_node, f"prompt '{prompt_id}'")
    if not text.strip():
        raise nodes.fail(
            f"prompt '{prompt_id}' is empty; write the prompt text", text_node
        )
    if prompt_id in seen:
        raise nodes.fail(
            f"prompt id '{prompt_id}' is used twice (first on line "
            f"{seen[prompt_id]}); give each prompt its own id",
            id_node,
        )
    seen[prompt_id] = line_of(item)
    placeholders = _placeholders(nodes, prompt_id, text, text_node, vars_)
    return Prompt(prompt_id, text, placeholders, line_of(item))


def warn_unused_vars(
    nodes: NodeReader,
    prompts: tuple[Prompt, ...],
    var_nodes: Mapping[str, yaml.Node],
) -> None:
    """A var no prompt uses multiplies nothing: say so, but let the job run."""
    used = {var for p in prompts for var in p.placeholders}
    for var, key_node in var_nodes.items():
        if var not in used:
            nodes.warn(
                f"var '{var}' is used by no prompt, so it changes nothing; add "
                f"{{{var}}} to a prompt or remove it",
                key_node,
            )


def _placeholders(
    nodes: NodeReader,
    prompt_id: str,
    text: str,
    node: yaml.Node,
    vars_: Mapping[str, tuple[str, ...]] | None,
) -> tuple[str, ...]:
    """The vars a prompt uses; each undeclared one is noted as a problem (with a
    "did you mean" for a near miss), and the prompt kept."""
    try:
        found = scan_template(text)
    except TemplateError as exc:
        raise JobSpecError(
            nodes.shown,
            f"prompt '{prompt_id}' {exc.problem}",
            line=line_in(node, text, exc.offset),
        ) from None
    names: dict[str, None] = {}
    for name, offset in found:
        if vars_ is not None and name not in vars_:
            known = ", ".join(vars_) if vars_ else "none are declared"
            close = difflib.get_close_matches(name, list(vars_), n=1)
            hint = f"; did you mean {{{close[0]}}}?" if close else ""
            nodes.note(
                JobSpecError(
                    nodes.shown,
                    f"prompt '{prompt_id}' uses {{{name}}} but there is no var "
                    f"'{name}'{hint} (known vars: {known}); declare it under "
                    f"'vars:', fix the name, or write {{{{{name}}}}} for literal "
                    "braces",
                    line=line_in(node, text, offset),
                )
            )
            continue
        names.setdefault(name)
    return tuple(names)
