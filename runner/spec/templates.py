"""Prompt templates: the `{name}` placeholders a prompt may hold.

Owns: scanning a template at load time (only plain `{name}` fields, `{{`/`}}` for
literal braces) and rendering it at plan time. Must not know YAML, vars
declarations or line numbers: callers map a problem's offset to a line.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from runner.spec.messages import show

if TYPE_CHECKING:
    from collections.abc import Mapping


class TemplateError(Exception):
    """A template refused by `scan_template`; `offset` is where in the text."""

    def __init__(self, problem: str, offset: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.offset = offset


def scan_template(text: str) -> list[tuple[str, int]]:
    """Placeholder names with their offsets in `text`; refuses all but {name}."""
    found: list[tuple[str, int]] = []
    offset = 0
    plain_only = (
        "only plain {name} placeholders are supported; write {{ and }} for "
        "literal braces"
    )
    try:
        for literal, name, spec, conversion in _FORMATTER.parse(text):
            # Every brace in a parsed literal was written doubled in the source.
            offset += len(literal) + literal.count("{") + literal.count("}")
            if name is None:
                continue
            written = "{" + name
            written += f"!{conversion}" if conversion else ""
            written += f":{spec}" if spec else ""
            written += "}"
            shown = show(written)
            if name == "" or name.isdigit():
                problem = f"has a positional placeholder {shown}"
            elif conversion is not None:
                problem = f"uses a conversion in {shown}"
            elif spec:
                problem = f"uses a format spec in {shown}"
            elif "." in name or "[" in name:
                problem = f"uses attribute or index access in {shown}"
            elif not name.isidentifier():
                problem = (
                    f"has {shown}, which is not a placeholder name (a var name is "
                    "letters, digits and '_', not starting with a digit)"
                )
            else:
                found.append((name, offset))
                offset += len(written)
                continue
            raise TemplateError(f"{problem}: {plain_only}", offset)
    except ValueError as exc:
        reason = str(exc)
        if "Single '}'" in reason:
            what = "a '}' with no '{' before it"
        elif "Single '{'" in reason or "expected '}'" in reason:
            what = "a '{' that is never closed"
        else:
            what = f"unbalanced braces ({reason})"
        raise TemplateError(f"has {what}: {plain_only}", offset) from None
    return found


def render_template(text: str, values: Mapping[str, str], prompt_id: str) -> str:
    """Substitute {name} placeholders; '{{' and '}}' are literal braces."""
    # Not str.format: a value holding braces must go in verbatim, and the
    # template was validated at load time to hold only plain {name} fields.
    parts: list[str] = []
    for literal, name, _spec, _conversion in _FORMATTER.parse(text):
        parts.append(literal)
        if name is not None:
            if name not in values:
                raise KeyError(f"prompt '{prompt_id}' needs a value for {{{name}}}")
            parts.append(values[name])
    return "".join(parts)


_FORMATTER = string.Formatter()
