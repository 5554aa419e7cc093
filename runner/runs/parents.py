"""A derived job's parents: the images its `from:` names, found in the store and
read back from their job folder (SPEC section 6).

Owns: turning a job file's `Derivation` into `lineage.Parent`s. The parent job must
be in the store; each image must still be on disk (read, checked and hashed like a
reference image); a `continue` needs the parent's recorded answer parts, whose
images are read back from their files; a `continue` or `rerender` needs the
parent's own reference images unchanged. A real submit derives only from real
results: simulated parents are for a simulated one. Each problem is a plan-time
JobSpecError naming the parent; all are reported at once. Sends and writes nothing.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.client.outcome import CUT_KEY, FILE_KEY
from runner.errors import JobSpecError, JobSpecErrors
from runner.lineage import FILE, Parent, Turn
from runner.plan import Request
from runner.spec import Reference
from runner.spec.references import ImageFacts, ReferenceProblem, inspect_reference

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from runner.runs.workspace import Workspace
    from runner.spec import Derivation, JobSpec
    from runner.store import JobRow, ParentImage, Store


@dataclass(frozen=True, slots=True)
class Parents:
    """The parents a derived job's plan takes, and what was left out."""

    parents: tuple[Parent, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. simulated images a real submit leaves out


def find_parents(
    spec: JobSpec, store: Store, workspace: Workspace, *, simulated: bool = False
) -> Parents:
    """The parent images `spec.derived` names (none for a job that derives from
    nothing); `simulated`: a --simulate submit, which may derive from simulated
    images too. JobSpecError, naming each parent and the fix, when any is unusable."""
    derived = spec.derived
    if derived is None:
        return Parents()
    finder = _Finder(spec, derived, store, workspace)
    job = finder.parent_job()
    statuses = ("succeeded", "simulated") if simulated else ("succeeded",)
    images = finder.select(job, statuses)
    parents = []
    for image in images:
        parent = finder.parent(job, image)
        if parent is not None:
            parents.append(parent)
    finder.raise_problems()
    notes = finder.model_notes(parents)
    if not simulated:
        notes += finder.simulated_note(job, images)
    return Parents(tuple(parents), notes)


class _Finder:
    """Finds one derived job's parents, collecting every problem on the way."""

    def __init__(
        self, spec: JobSpec, derived: Derivation, store: Store, workspace: Workspace
    ) -> None:
        self.spec = spec
        self.derived = derived
        self.store = store
        self.workspace = workspace
        self.problems: list[JobSpecError] = []
        self.files: dict[Path, ImageFacts] = {}  # each file read once

    def fail(self, message: str) -> JobSpecError:
        return JobSpecError(self.spec.path, message, line=self.derived.line)

    def raise_problems(self) -> None:
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            raise JobSpecErrors(self.problems)

    def parent_job(self) -> JobRow:
        name = self.derived.job
        if name == self.spec.name:
            raise self.fail(
                f"from: job '{name}' is this job itself; derive from another job"
            )
        job = self.store.get_job(name)
        if job is None:
            known = [j.name for j in self.store.list_jobs()]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise self.fail(
                f"from: job '{name}' is not in the store; {hint}submit that job "
                "first, or name one of `runner list` (with the same --output)"
            )
        return job

    def select(self, job: JobRow, statuses: Sequence[str]) -> list[ParentImage]:
        """The images `from: marked` names, each once, in the parent's plan order."""
        marked = self.derived.marked
        found = self.store.parent_images(job, marked, statuses)
        if isinstance(marked, tuple):
            found = self._explicit(job, marked, found, statuses)
        unique = list({(i.key, i.image): i for i in found}.values())
        if not unique and marked == "star":
            raise self.fail(
                f"from: job '{job.name}' has no starred images to derive from; "
                f"star some (`runner mark {job.name} IMAGE... --star`), or use "
                "'marked: succeeded'"
            )
        if not unique:
            raise self.fail(
                f"from: job '{job.name}' has no succeeded images to derive from; "
                "run it (`runner submit`), or choose other images in from: marked"
                f"{self._simulated_hint(job, statuses)}"
            )
        return unique

    def _explicit(
        self,
        job: JobRow,
        names: Sequence[str],
        found: list[ParentImage],
        statuses: Sequence[str],
    ) -> list[ParentImage]:
        """The images an explicit list names; a name that names none, a prefix
        that names several items, or an image not succeeded is a problem."""
        for name in names:
            by_name = [i for i in found if i.name == name.rpartition("/")[2]]
            keys = {i.key for i in found if i.key.startswith(name)}
            if not by_name and not keys:
                self.problems.append(
                    self.fail(
                        f"from: marked: '{name}' is neither an image of job "
                        f"'{job.name}' nor the start of one of its item keys; see "
                        f"{job.name}'s manifest.jsonl or gallery for the names"
                    )
                )
            elif not by_name and len(keys) > 1:
                self.problems.append(
                    self.fail(
                        f"from: marked: '{name}' starts {len(keys)} item keys of "
                        f"job '{job.name}'; give more of the key"
                    )
                )
        usable = []
        for image in found:
            if image.status in statuses:
                usable.append(image)
            elif image.status == "simulated":
                self.problems.append(
                    self.fail(
                        f"parent image {job.name}/{image.image} is a simulated "
                        f"result: a real submit derives only from real images; "
                        f"submit '{job.name}' without --simulate first"
                    )
                )
            else:
                self.problems.append(
                    self.fail(
                        f"parent image {job.name}/{image.image} belongs to an item "
                        f"that is {image.status}, not succeeded; `runner retry "
                        f"{job.name}` or choose another image"
                    )
                )
        self.raise_problems()
        return usable

    def parent(self, job: JobRow, image: ParentImage) -> Parent | None:
        """One parent, read and checked; None (a problem noted) if unusable."""
        shown = f"{job.name}/{image.image}"
        folder = self.workspace.job_folder(job.name)
        file = self._file(shown, folder / image.image, f"parent image {shown}")
        if file is None:
            return None
        request = Request.from_json(image.request_json)
        mode = self.derived.mode
        answer = None
        if mode in ("continue", "rerender"):
            sent = [*request.references]
            if mode == "continue":
                sent += [f for turn in request.history for f in turn.files]
            if not self._unchanged(shown, sent):
                return None
        if mode == "continue":
            answer = self._answer(job.name, shown, image.parts_json)
            if answer is None:
                return None
        return Parent(
            job=job.name,
            key=image.key,
            image=image.image,
            file=file,
            aspect_ratio=image.aspect_ratio,
            prompt_id=image.prompt_id,
            vars=json.loads(image.vars_json),
            ref_label=image.ref_label,
            text=request.text,
            references=request.references,
            history=request.history,
            answer=answer,
            model=request.model,
        )

    def _file(self, shown: str, path: Path, what: str) -> Reference | None:
        """An image file of the parent job, read and checked like a reference."""
        facts = self.files.get(path)
        if facts is None:
            if not path.is_file():
                self.problems.append(
                    self.fail(
                        f"{what} is gone (looked for {path}); restore it, or "
                        "choose the images to derive from in from: marked"
                    )
                )
                return None
            try:
                facts = self.files[path] = inspect_reference(shown, path)
            except ReferenceProblem as exc:
                self.problems.append(self.fail(f"{what}: {exc}"))
                return None
        sha256, mime_type, width, height, size = facts
        return Reference(shown, path, sha256, mime_type, width, height, size)

    def _unchanged(self, shown: str, refs: Sequence[Reference]) -> bool:
        """Whether the images the parent's request sent are still as they were."""
        for ref in refs:
            try:
                same = hashlib.sha256(ref.abs_path.read_bytes()).hexdigest()
            except OSError:
                same = ""
            if same != ref.sha256:
                state = "changed" if same else "gone"
                self.problems.append(
                    self.fail(
                        f"parent image {shown}: the image {ref.path} its request "
                        f"sent is {state} ({ref.abs_path}); mode: "
                        f"{self.derived.mode} sends that request again, so restore "
                        "it, or use 'mode: edit'"
                    )
                )
                return False
        return True

    def _answer(self, job: str, shown: str, parts_json: str | None) -> Turn | None:
        """The model's turn that made the parent, as kept in the store: each final
        image's bytes named by its file, interim thought images (whose bytes are
        not kept, and which carry no signature) left out."""
        if parts_json is None:
            self.problems.append(
                self.fail(
                    f"parent image {shown} was recorded without its answer's parts "
                    "(by an older runner, or adopted from its file after a crash), "
                    "so 'mode: continue' cannot send its conversation back; use "
                    "'mode: edit', or choose other images in from: marked"
                )
            )
            return None
        parts: list[Mapping[str, Any]] = []
        files: list[Reference] = []
        for part in json.loads(parts_json):
            key = "inlineData" if "inlineData" in part else "inline_data"
            inline = part.get(key)
            if isinstance(inline, dict):
                if FILE_KEY not in inline:
                    continue  # an interim thought image: its bytes are not kept
                path = str(inline[FILE_KEY])
                file = self._file(
                    f"{job}/{path}",
                    self.workspace.job_folder(job) / path,
                    f"image {path} of parent {shown}'s answer",
                )
                if file is None:
                    return None
                mime = "mimeType" if key == "inlineData" else "mime_type"
                parts.append({**part, key: {mime: file.mime_type, FILE: len(files)}})
                files.append(file)
            else:
                parts.append({k: v for k, v in part.items() if k != CUT_KEY})
        return Turn("model", tuple(parts), tuple(files))

    def _simulated_hint(self, job: JobRow, statuses: Sequence[str]) -> str:
        if "simulated" in statuses:
            return ""
        simulated = self.store.parent_images(job, "succeeded", ("simulated",))
        if not simulated:
            return ""
        return (
            f" ({len(simulated)} simulated images are left out: submit "
            f"'{job.name}' without --simulate first, or derive with --simulate)"
        )

    def model_notes(self, parents: Sequence[Parent]) -> tuple[str, ...]:
        """A continue whose parents another model made: thought signatures are a
        model's own (ai.google.dev/gemini-api/docs/thought-signatures: pass them
        back "exactly as received"), so another model may refuse them."""
        if self.derived.mode != "continue":
            return ()
        models = sorted({p.model for p in parents} - {self.spec.model})
        if not models:
            return ()
        return (
            f"mode: continue sends {', '.join(models)}'s answers (and their thought "
            f"signatures) to {self.spec.model}, which may refuse them; set 'model: "
            f"{models[0]}' to continue with the model that made them",
        )

    def simulated_note(
        self, job: JobRow, chosen: Sequence[ParentImage]
    ) -> tuple[str, ...]:
        """A note when a real submit leaves simulated images of the parent out."""
        if self.derived.marked != "succeeded":
            return ()
        hint = self._simulated_hint(job, ())
        if not hint:
            return ()
        return (
            f"from: job '{job.name}': {len(chosen)} succeeded images are parents{hint}",
        )
