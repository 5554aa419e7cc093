"""Job file (YAML) -> frozen, validated `JobSpec`: the top level, key by key.

Owns: `load_job`, the top-level keys (unknown ones refused, `key:` with nothing
after it meaning the default), the order keys are read in (the model before what
it must take, vars before prompts, axes before exclude/include) and the defaults of
the numeric settings. Must not open the store, use the network or write anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import yaml

from runner.spec import axes, generation, matrix, prompts, settings
from runner.spec.capabilities import Capabilities
from runner.spec.document import compose, read_job_text
from runner.spec.matrix import Axes
from runner.spec.nodes import NodeReader, given, is_null
from runner.spec.reference_sets import ReferenceSets
from runner.spec.types import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_UNKNOWN_RETRIES,
    MAX_ATTEMPTS_LIMIT,
    MAX_CONCURRENCY,
    MAX_SAMPLES,
    MAX_UNKNOWN_RETRIES_LIMIT,
    JobSpec,
)

TOP_LEVEL_KEYS = (
    "name", "model", "prompts", "vars", "aspect_ratios", "image_sizes", "references",
    "samples", "generation", "system_instruction", "safety_settings", "exclude",
    "include", "concurrency", "max_attempts", "max_unknown_retries", "budget", "rpm",
    "pricing", "tools",
)  # fmt: skip


def load_job(path: Path | str) -> JobSpec:
    """Read and validate a job file; raise JobSpecError naming file, line and fix."""
    job_path = Path(path)
    shown = str(path)
    text = read_job_text(job_path, shown)
    root = compose(text, shown)
    spec = _read(root, job_path, shown)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return dataclasses.replace(spec, source_sha256=digest)


def _read(root: yaml.Node | None, path: Path, shown: str) -> JobSpec:
    """Turns the composed node tree into a JobSpec, one key at a time."""
    nodes = NodeReader(shown)
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
    for key, key_node, value_node in nodes.pairs(root):
        if key not in TOP_LEVEL_KEYS:
            raise nodes.unknown_key(key, key_node, TOP_LEVEL_KEYS, "key")
        given_keys[key] = (key_node, value_node)

    def value(key: str) -> yaml.Node | None:
        pair = given_keys.get(key)
        # `key:` with nothing after it means "use the default", so that
        # commenting out every line under a key does not break the file.
        return None if pair is None or is_null(pair[1]) else pair[1]

    if "prompts" not in given_keys:
        raise nodes.fail(
            "the job has no 'prompts:' list; add one with at least one prompt"
        )
    name = settings.read_name(nodes, value("name"), path)
    model = settings.read_model(nodes, value("model"))
    capabilities = Capabilities.of(nodes, model, value("model"))
    vars_, var_nodes = prompts.read_vars(nodes, value("vars"))
    prompts_node = value("prompts")
    if prompts_node is None:
        raise nodes.fail(
            "prompts is empty; add at least one prompt", given_keys["prompts"][0]
        )
    job_prompts = prompts.read_prompts(nodes, prompts_node, vars_)
    prompts.warn_unused_vars(nodes, job_prompts, var_nodes)
    aspect_ratios = axes.read_aspect_ratios(nodes, value("aspect_ratios"), capabilities)
    image_sizes = axes.read_image_sizes(nodes, value("image_sizes"), capabilities)
    sets = ReferenceSets(nodes, path.absolute().parent, capabilities)
    references = sets.axis(value("references"))
    samples = nodes.integer(value("samples"), "samples", 1, MAX_SAMPLES, 1)
    grid = Axes(
        job_prompts,
        vars_,
        aspect_ratios,
        image_sizes,
        references,
        samples,
        capabilities,
    )
    exclude = matrix.read_matrix(nodes, sets, value("exclude"), "exclude", grid)
    include = matrix.read_matrix(nodes, sets, value("include"), "include", grid)
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
        generation=generation.read_generation(nodes, value("generation")),
        system_instruction=settings.read_system_instruction(
            nodes, value("system_instruction")
        ),
        safety_settings=settings.read_safety_settings(nodes, value("safety_settings")),
        exclude=exclude,
        include=include,
        concurrency=nodes.integer(
            value("concurrency"),
            "concurrency",
            1,
            MAX_CONCURRENCY,
            DEFAULT_CONCURRENCY,
        ),
        max_attempts=nodes.integer(
            value("max_attempts"),
            "max_attempts",
            1,
            MAX_ATTEMPTS_LIMIT,
            DEFAULT_MAX_ATTEMPTS,
        ),
        max_unknown_retries=nodes.integer(
            value("max_unknown_retries"),
            "max_unknown_retries",
            0,
            MAX_UNKNOWN_RETRIES_LIMIT,
            DEFAULT_MAX_UNKNOWN_RETRIES,
        ),
        budget=settings.read_budget(nodes, value("budget")),
        rpm=settings.read_rpm(nodes, value("rpm")),
        pricing=settings.read_pricing(nodes, value("pricing")),
        tools=settings.read_tools(nodes, value("tools")),
        warnings=tuple(nodes.warnings),
    )
