"""The text of a starter job file (`runner init`), made from `keys.KEYS`.

Owns: the starter's header (the editor line naming the JSON Schema, the next
commands), the few keys it sets, every other key commented out with its
description and example, and the note in its refs/ folder. Must not write files:
`runner.runs.starter` does.
"""

from __future__ import annotations

import re
import textwrap

from runner.spec.keys import KEYS
from runner.spec.schema import EDITOR_LINE

# Keys the starter sets (the rest are commented out): a small grid that plans as
# written and shows a var and two aspect ratios.
STARTER_KEYS = ("name", "model", "prompts", "vars", "aspect_ratios", "samples")
REFS_FOLDER = "refs"
REFS_NOTE = """\
Reference images for this job: PNG, JPEG or WEBP, at most 7 MiB each.
Name them in the job file's `references:` key, relative to the job file, e.g.
  references:
    - []                  # a text-only set
    - [refs/logo.png]     # a set with this image
Each set is sent with every prompt, so it multiplies the grid.
"""


def starter_job(name: str, file_name: str, schema_path: str) -> str:
    """A commented job file named `name` that `runner plan` accepts as written;
    `file_name` is what its next commands call it, `schema_path` the schema's path
    relative to it."""
    commands = (
        (f"runner plan {file_name}", "check it: the grid and its cost"),
        (f"runner submit {file_name} --simulate", "try it: no key, no network"),
        (f"runner submit {file_name}", "send it (key in TOKAIFY_API_KEY)"),
    )
    width = max(len(command) for command, _ in commands)
    lines = [
        EDITOR_LINE.format(path=schema_path),
        "# A runner job file: a grid of image requests (prompts x vars x aspect",
        "# ratios x image sizes x reference sets x samples). From this folder:",
        *(f"#   {command:<{width}}   {what}" for command, what in commands),
        "# Uncomment a key to use it. Every key and its values: `runner schema`.",
    ]
    for key in KEYS:
        value = name if key.name == "name" else key.example
        entry = f"{key.name}:{'' if value.startswith(chr(10)) else ' '}{value}"
        lines += ["", *(f"# {line}" for line in _wrap(key.description))]
        if key.name in STARTER_KEYS:
            lines += entry.splitlines()
        else:
            lines += [f"# {line}" for line in entry.splitlines()]
    return "\n".join(lines) + "\n"


def _wrap(text: str) -> list[str]:
    """Comment lines of at most 80 characters, never breaking inside {...}."""
    kept = re.sub(r"\{[^{}]*\}", lambda m: m.group().replace(" ", _NBSP), text)
    return [line.replace(_NBSP, " ") for line in textwrap.wrap(kept, width=78)]


_NBSP = "\xa0"  # textwrap breaks lines at ASCII spaces only
