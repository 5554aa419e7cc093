"""What the job's model can do, checked value by value where the job file names it.

Owns: `Capabilities`: an aspect ratio, image size or reference set the job's model
does not take (per runner.models) is refused at its line, naming what the model
takes and a known model that takes it; a model not in the table is allowed with a
warning and checked only against what any model takes. Must not read YAML itself.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.models import MAX_REFERENCES, MODELS, model_for
from runner.spec.messages import show

if TYPE_CHECKING:
    from collections.abc import Callable

    import yaml

    from runner.models import Model
    from runner.spec.nodes import NodeReader


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The job's model and what it takes; `model` None when runner does not know it."""

    nodes: NodeReader
    model_id: str
    model: Model | None

    @classmethod
    def of(
        cls, nodes: NodeReader, model_id: str, node: yaml.Node | None
    ) -> Capabilities:
        """The model's capabilities; a model not in the table gets a warning."""
        model = model_for(model_id)
        if model is None and node is not None:
            close = difflib.get_close_matches(model_id, list(MODELS), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            nodes.warn(
                f"model {show(model_id)} is not one runner knows ({hint}known: "
                f"{', '.join(MODELS)}): its aspect ratios, image sizes and "
                "reference limit are unknown, so cells are checked only against "
                "what any model takes; its prices are unknown, so there is no cost "
                "estimate and budget.max_cost_usd cannot apply unless 'pricing:' "
                "gives all three prices",
                node,
            )
        return cls(nodes, model_id, model)

    def aspect_ratio(self, ratio: str, node: yaml.Node) -> None:
        """Refuse a ratio the model does not take ("auto" sends none: always fine)."""
        model = self.model
        if model is None or ratio == "auto" or ratio in model.aspect_ratios:
            return
        other = self._other(lambda m: ratio in m.aspect_ratios)
        raise self.nodes.fail(
            f"{self.model_id} does not take aspect ratio {ratio}; use one of "
            f"{', '.join(model.aspect_ratios)}{_or_model(other)}",
            node,
        )

    def image_size(self, size: str, node: yaml.Node) -> None:
        model = self.model
        if model is None or (model.image_sizes and size in model.image_sizes):
            return
        other = self._other(lambda m: size in (m.image_sizes or ()))
        if model.image_sizes is None:
            problem = "takes no image size setting (it makes one size); remove it"
        else:
            problem = (
                f"does not take image size {size}; use one of "
                f"{', '.join(model.image_sizes)}"
            )
        raise self.nodes.fail(f"{self.model_id} {problem}{_or_model(other)}", node)

    def references(self, count: int, node: yaml.Node) -> None:
        """Refuse a reference set larger than one request of the model may carry."""
        if self.model is None:
            most, who = MAX_REFERENCES, "the API takes"
        else:
            most, who = self.model.max_references, f"{self.model_id} takes"
        if count <= most:
            return
        other = self._other(lambda m: count <= m.max_references)
        raise self.nodes.fail(
            f"this reference set has {count} images; {who} at most {most} per "
            f"request: split it into several sets{_or_model(other)}",
            node,
        )

    def _other(self, takes: Callable[[Model], bool]) -> str | None:
        """The first known model, other than the job's, that takes the value."""
        for name, model in MODELS.items():
            if model is not self.model and takes(model):
                return name
        return None


def _or_model(name: str | None) -> str:
    return "" if name is None else f", or use model {name}"
