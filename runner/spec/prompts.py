"""The `prompts:` list and the `vars:` its placeholders draw from.

Owns: prompt ids (given or p1, p2, ...), prompt text, the placeholders each prompt
uses (each must be a declared var), var names and their distinct values, and the
warning for a var no prompt uses; the same rules for prompts and values read from a
list file (`{file: PATH}`, read by `lists`), whose problems are reported at the
list file's lines. Must not expand the grid: `runner.plan` does.
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
    from collections.abc import Callable, Mapping

    from runner.spec.lists import ListFiles
    from runner.spec.nodes import NodeReader

PROMPT_KEYS = ("id", "text")


def read_vars(
    nodes: NodeReader, lists: ListFiles, node: yaml.Node | None
) -> tuple[dict[str, tuple[str, ...]], dict[str, yaml.Node]]:
    """Each var's values, and its key node (for warnings about its use)."""
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode):
        raise nodes.fail(
            "vars must be a mapping of var name to a list of values, e.g. "
            f"'vars: {{style: [flat, 3D]}}' or 'vars: {{style: {{file: styles.txt}}}}'"
            f", got {given(node)}",
            node,
        )
    values: dict[str, tuple[str, ...]] = {}
    key_nodes: dict[str, yaml.Node] = {}
    for var, key_node, value_node in nodes.pairs(node):
        # A var with a problem keeps its name, so prompts that use it are fine.
        values[var] = nodes.attempt(
            partial(_var_values, nodes, lists, var, key_node, value_node), ()
        )
        key_nodes[var] = key_node
    return values, key_nodes


def _var_values(
    nodes: NodeReader,
    lists: ListFiles,
    var: str,
    key_node: yaml.Node,
    value_node: yaml.Node,
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
    if isinstance(value_node, yaml.MappingNode):
        return _listed_values(lists, var, value_node)
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


def _listed_values(
    lists: ListFiles, var: str, node: yaml.MappingNode
) -> tuple[str, ...]:
    """A var's values from its list file, one per line."""
    listed = lists.read(node, f"var '{var}'", "values")
    seen: dict[str, int] = {}
    for line, text in listed.entries:
        if text in seen:
            raise listed.fail(
                f"var '{var}' lists {show(text)} twice (first on line "
                f"{seen[text]}); remove one",
                line,
            )
        seen[text] = line
    return tuple(seen)


def read_prompts(
    nodes: NodeReader,
    lists: ListFiles,
    node: yaml.Node,
    vars_: Mapping[str, tuple[str, ...]] | None,
) -> tuple[Prompt, ...]:
    """The prompts; `vars_` None when `vars:` itself could not be read (then a
    placeholder is not checked against it). A prompt with a problem is noted and
    left out, and reading goes on with the next."""
    if isinstance(node, yaml.MappingNode):
        return _listed_prompts(nodes, lists, node, vars_)
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
    placeholders = _placeholders(
        nodes, prompt_id, text, nodes.shown, partial(line_in, text_node, text), vars_
    )
    return Prompt(prompt_id, text, placeholders, line_of(item))


def _listed_prompts(
    nodes: NodeReader,
    lists: ListFiles,
    node: yaml.MappingNode,
    vars_: Mapping[str, tuple[str, ...]] | None,
) -> tuple[Prompt, ...]:
    """Prompts from a list file, one per line, with ids p1, p2, ... as for a list
    of texts (so the same prompts give the same items either way)."""
    listed = lists.read(node, "prompts", "prompts")
    prompts: list[Prompt] = []
    for position, (line, text) in enumerate(listed.entries, start=1):
        prompt_id = f"p{position}"
        placeholders = nodes.attempt(
            partial(
                _placeholders,
                nodes,
                prompt_id,
                text,
                listed.shown,
                partial(_fixed_line, line),
                vars_,
            ),
            None,
        )
        if placeholders is not None:
            prompts.append(Prompt(prompt_id, text, placeholders, line))
    return tuple(prompts)


def _fixed_line(line: int, _offset: int) -> int:
    """A list file's prompt is one line: every offset in it is on that line."""
    return line


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
    shown: str,
    line_at: Callable[[int], int | None],
    vars_: Mapping[str, tuple[str, ...]] | None,
) -> tuple[str, ...]:
    """The vars a prompt uses; each undeclared one is noted as a problem (with a
    "did you mean" for a near miss), and the prompt kept. Problems name the file
    `shown` and the line `line_at` gives for an offset in the text."""
    try:
        found = scan_template(text)
    except TemplateError as exc:
        raise JobSpecError(
            shown,
            f"prompt '{prompt_id}' {exc.problem}",
            line=line_at(exc.offset),
        ) from None
    names: dict[str, None] = {}
    for name, offset in found:
        if vars_ is not None and name not in vars_:
            known = ", ".join(vars_) if vars_ else "none are declared"
            close = difflib.get_close_matches(name, list(vars_), n=1)
            hint = f"; did you mean {{{close[0]}}}?" if close else ""
            nodes.note(
                JobSpecError(
                    shown,
                    f"prompt '{prompt_id}' uses {{{name}}} but there is no var "
                    f"'{name}'{hint} (known vars: {known}); declare it under "
                    f"'vars:', fix the name, or write {{{{{name}}}}} for literal "
                    "braces",
                    line=line_at(offset),
                )
            )
            continue
        names.setdefault(name)
    return tuple(names)
