"""Job file (YAML) -> frozen, validated `JobSpec`: the top level, key by key.

Owns: `load_job`, refusing top-level keys not in `keys.KEYS` (`key:` with nothing
after it meaning the default), the order keys are read in (the model before what
it must take, vars before prompts, axes before exclude/include), reading on past a
key's problem so that all are reported at once, and the job's source hash. Must
not open the store, use the network or write anything.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from runner.spec import axes, derived, generation, matrix, prompts, settings
from runner.spec.capabilities import Capabilities
from runner.spec.document import compose, read_job_text
from runner.spec.keys import TOP_LEVEL_KEYS, WHOLE_NUMBERS
from runner.spec.lists import ListFiles
from runner.spec.matrix import Axes
from runner.spec.nodes import NodeReader, given, is_null
from runner.spec.reference_sets import ReferenceSets
from runner.spec.types import (
    DEFAULT_TRANSPORT,
    Budget,
    JobSpec,
    MatrixEntry,
    Prompt,
    Reference,
)


def load_job(path: Path | str) -> JobSpec:
    """Read and validate a job file; raise JobSpecError naming file, line and fix."""
    job_path = Path(path)
    shown = str(path)
    text = read_job_text(job_path, shown)
    root = compose(text, shown)
    nodes = NodeReader(shown)
    lists = ListFiles(nodes, job_path.absolute().parent)
    spec = _read(root, job_path, nodes, lists)
    return dataclasses.replace(spec, source_sha256=source_digest(text, lists))


def source_digest(text: str, lists: ListFiles) -> str:
    """SHA-256 of the job file's text and, when it reads list files, of theirs:
    an edited prompts file is a changed job (planned again). A job file without
    list files keeps the plain hash of its text, as stored plans recorded it."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if not lists.digests:
        return digest
    files = [[str(path), sha256] for path, sha256 in lists.digests.items()]
    blob = json.dumps([digest, files], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _read(
    root: yaml.Node | None, path: Path, nodes: NodeReader, lists: ListFiles
) -> JobSpec:
    """Turns the composed node tree into a JobSpec, one key at a time. A key that
    fails is noted and reading goes on (keys that depend on it are not checked),
    so that every problem in the file is reported at once."""
    if root is None or (is_null(root) and not root.value):
        raise nodes.fail(
            "the job file is empty; it needs at least a 'prompts:' list, e.g. "
            'prompts: ["A cat astronaut"]'
        )
    if not isinstance(root, yaml.MappingNode):
        raise nodes.fail(
            "the top level must be a mapping of settings such as 'prompts:' and "
            f"'aspect_ratios:', got {given(root)}",
            root,
        )
    given_keys: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    misspelt: set[str] = set()  # known keys that an unknown one is close to
    for key, key_node, value_node in nodes.pairs(root):
        if key not in TOP_LEVEL_KEYS:
            nodes.note(nodes.unknown_key(key, key_node, TOP_LEVEL_KEYS, "key"))
            misspelt.update(difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1))
        else:
            given_keys[key] = (key_node, value_node)

    def value(key: str) -> yaml.Node | None:
        pair = given_keys.get(key)
        # `key:` with nothing after it means "use the default", so that
        # commenting out every line under a key does not break the file.
        return None if pair is None or is_null(pair[1]) else pair[1]

    def number(key: str) -> int:
        limits = WHOLE_NUMBERS[key]
        return nodes.attempt(
            lambda: nodes.integer(
                value(key), key, limits.lo, limits.hi, limits.default
            ),
            limits.default,
        )

    # A derived job (SPEC 6); a rerender takes its prompts from its parents.
    derivation = nodes.attempt(
        lambda: derived.read_derivation(nodes, value("from"), value("mode")), None
    )
    derived.refuse_for_mode(
        nodes, derivation, {k: pair[0] for k, pair in given_keys.items()}
    )
    rerender = derivation is not None and derivation.mode == "rerender"
    # A misspelt 'prompts:' is reported once, as the unknown key it is.
    if "prompts" not in given_keys and "prompts" not in misspelt and not rerender:
        nodes.note(
            nodes.fail(
                "the job has no 'prompts:' list; add one with at least one prompt"
            )
        )
    name = nodes.attempt(lambda: settings.read_name(nodes, value("name"), path), "")
    model = nodes.attempt(lambda: settings.read_model(nodes, value("model")), "")
    capabilities = Capabilities.of(nodes, model, value("model"))
    # Problems so far cannot spoil the grid's keys; a problem from here on does
    # make exclude/include unreadable (their values are checked against the grid).
    before_grid = len(nodes.problems)
    read_vars = nodes.attempt(
        lambda: prompts.read_vars(nodes, lists, value("vars")), None
    )
    # `vars:` unreadable as a whole: its names are unknown, so placeholders are
    # not checked against it (each would be reported as undeclared).
    vars_read = read_vars is not None
    vars_, var_nodes = read_vars or ({}, {})
    prompts_node = value("prompts")
    job_prompts: tuple[Prompt, ...] = ()
    if rerender:
        pass  # each parent's own prompt (and a prompts: key refused above)
    elif prompts_node is None and "prompts" in given_keys:
        nodes.note(
            nodes.fail(
                "prompts is empty; add at least one prompt", given_keys["prompts"][0]
            )
        )
    elif prompts_node is not None:
        job_prompts = nodes.attempt(
            lambda: prompts.read_prompts(
                nodes, lists, prompts_node, vars_ if vars_read else None
            ),
            (),
        )
    prompts.warn_unused_vars(nodes, job_prompts, var_nodes)
    default_ratios: tuple[str, ...] = ("1:1",)
    aspect_ratios = nodes.attempt(
        lambda: axes.read_aspect_ratios(
            nodes,
            value("aspect_ratios"),
            capabilities,
            parent=derivation is not None,
        ),
        default_ratios,
    )
    no_sizes: tuple[str | None, ...] = (None,)
    image_sizes = nodes.attempt(
        lambda: axes.read_image_sizes(nodes, value("image_sizes"), capabilities),
        no_sizes,
    )
    sets = ReferenceSets(nodes, path.absolute().parent, capabilities)
    no_references: tuple[tuple[Reference, ...], ...] = ((),)
    references = nodes.attempt(lambda: sets.axis(value("references")), no_references)
    samples = number("samples")
    grid = Axes(
        job_prompts,
        vars_,
        aspect_ratios,
        image_sizes,
        references,
        samples,
        capabilities,
    )
    exclude: tuple[MatrixEntry, ...] = ()
    include: tuple[MatrixEntry, ...] = ()
    if len(nodes.problems) == before_grid:
        exclude = matrix.read_matrix(nodes, sets, value("exclude"), "exclude", grid)
        include = matrix.read_matrix(nodes, sets, value("include"), "include", grid)
    no_generation: dict[str, Any] = {}
    generation_config = nodes.attempt(
        lambda: generation.read_generation(nodes, value("generation")), no_generation
    )
    system_instruction = nodes.attempt(
        lambda: settings.read_system_instruction(nodes, value("system_instruction")),
        None,
    )
    safety_settings = nodes.attempt(
        lambda: settings.read_safety_settings(nodes, value("safety_settings")), None
    )
    concurrency = number("concurrency")
    max_attempts = number("max_attempts")
    max_unknown_retries = number("max_unknown_retries")
    budget = nodes.attempt(lambda: settings.read_budget(nodes, value("budget")), None)
    rpm = nodes.attempt(lambda: settings.read_rpm(nodes, value("rpm")), None)
    pricing = nodes.attempt(
        lambda: settings.read_pricing(nodes, value("pricing")), None
    )
    tools = nodes.attempt(lambda: settings.read_tools(nodes, value("tools")), None)
    transport = nodes.attempt(
        lambda: settings.read_transport(nodes, value("transport")), DEFAULT_TRANSPORT
    )
    nodes.raise_problems()
    return JobSpec(
        path=path.absolute(),
        name=name,
        model=model,
        prompts=job_prompts,
        vars=vars_,
        aspect_ratios=aspect_ratios,
        image_sizes=image_sizes,
        references=references,
        extra_reference_sets=tuple(sets.extra),
        samples=samples,
        exclude=exclude,
        include=include,
        generation=generation_config,
        system_instruction=system_instruction,
        safety_settings=safety_settings,
        concurrency=concurrency,
        max_attempts=max_attempts,
        max_unknown_retries=max_unknown_retries,
        budget=budget or Budget(),
        rpm=rpm,
        pricing=pricing,
        tools=tools,
        transport=transport,
        warnings=tuple(nodes.warnings),
        derived=derivation,
    )
