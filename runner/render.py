"""How the reports look: rich tables and summary lines, the progress display, JSON.

Owns: stdout (tables, summaries, `--json`), stderr lines (warnings, notes, errors),
the live progress bar on a terminal and plain progress lines otherwise. On a
terminal, tables fit its width without cutting a name, number or path; through a
pipe, a table is a header line and tab-separated rows, with no colour or wrapping.
Everything it shows comes from a report in `runner.reports`; it decides nothing,
asks nothing and never exits. Rich is imported where it is used: `--json` output
never loads it (`runner status --json` took 345 ms with it loaded
and 274 ms without, medians of 15 alternated runs on this 2-CPU VM).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import click

from runner import outputs
from runner.reports import stale_note

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

    from runner.errors import RunnerError
    from runner.reports import (
        BatchShown,
        Confirmation,
        ExportReport,
        JobList,
        MarkReport,
        PlanPreview,
        Removal,
        ReviewReport,
        RunProgress,
        RunReport,
        Sending,
        ServeReport,
        Serving,
        Starter,
        StatusReport,
    )

PLAIN_PROGRESS_EVERY = 2.0  # seconds between progress lines when not on a terminal
INTERRUPTED_RESUME = "unfinished items stay pending; submit again to resume"
INTERRUPTED = f"interrupted: {INTERRUPTED_RESUME}"

COLUMN_GAP = 2  # spaces between table columns on a terminal
PROSE_FOLD = 20  # a longer word in prose (a URL in a reason) may fold to fit a table
Cell = int | str | None  # a table cell: ints get thousands separators on a terminal


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def err(message: str) -> None:
    """One line on stderr."""
    click.echo(message, err=True)


def error(exc: RunnerError, as_json: bool) -> None:
    """A failed command: `error:` lines on stderr, and with --json the error as
    `{"error": {...}}` on stdout."""
    if as_json:
        print_json({"error": exc.as_dict()})
    for line in exc.message.splitlines():
        err(f"error: {line}")


def browser_missing(page: Path | str) -> None:
    """`review --open` found no browser to open `page`, a file or a URL (stderr)."""
    if isinstance(page, str):
        warning(f"no browser could be opened; open {page} in one")
        return
    page = page.resolve()
    warning(
        f"no browser could be opened; open {page.as_uri()} in one "
        f"(the gallery is {page})"
    )


def warning(message: str) -> None:
    err(f"warning: {message}")


def question(confirmation: Confirmation) -> str:
    return f"{confirmation.summary}. Send them?"


def plan(preview: PlanPreview, as_json: bool) -> None:
    data = preview.as_dict()
    if as_json:
        print_json(data)
        return
    for message in data["warnings"]:
        warning(message)
    out = Stdout()
    out.line(
        f" ({data['file']}): {data['items']} items, {data['new']} new, "
        f"{data['to_send']} to send",
        bold=data["job"],
        whole=True,
    )
    if data["derived"]:
        d = data["derived"]
        marked = d["marked"] if isinstance(d["marked"], str) else "listed"
        out.line(
            f"  from {d['from']} ({d['mode']}, marked {marked}): {d['parents']} "
            f"parent image(s), {d['parents_to_send']} with cells to send"
        )
    for axis, counts in data["axes"].items():
        shown = ", ".join(f"{value} ({n})" for value, n in counts.items())
        out.line(f"  {axis:<13} {len(counts)} value(s): {shown}")
    if data["stored"]:
        stored = ", ".join(f"{n} {s}" for s, n in sorted(data["stored"].items()))
        out.line(f"  already in the store: {stored}")
    if data["duplicates_dropped"]:
        out.line(
            f"  {data['duplicates_dropped']} cell(s) dropped: same request as another"
        )
    for label, key in (("to send", "to_send"), ("whole plan", "whole_plan")):
        est = data["estimate"][key]
        cost = (
            "no price known" if est["cost_usd"] is None else f"${est['cost_usd']:,.2f}"
        )
        if est.get("batch_cost_usd") is not None:
            cost += f" (${est['batch_cost_usd']:,.2f} by batch)"
        basis = ""
        if est["recorded_answers"]:
            basis = f" (estimated from {est['recorded_answers']:,} recorded answers)"
        out.line(
            f"  estimate, {label}: {est['requests']:,} requests, "
            f"{est['tokens']['totalTokenCount']:,} tokens, {cost}{basis}, "
            f"up to {outputs.describe_bytes(est['bytes'])} of images"
        )
    caps = {k: v for k, v in data["budget"].items() if v is not None}
    if caps:
        shown = ", ".join(f"{k} {v}" for k, v in caps.items())
        out.line(f"  budget: {shown}")


def status(report: StatusReport, by: Sequence[str], as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    _status_tables(Stdout(), report.as_dict(), by)


def run(report: RunReport, as_json: bool, retry: str | None = None) -> None:
    """The gallery step's note (stderr), then the run and the job's status; with
    --json, one object that also holds `retry` (the command that sends the failed
    items again; `run_notes` says it otherwise)."""
    _gallery_note(report, quiet=as_json)
    if as_json:
        print_json({**report.as_dict(), "retry_command": retry})
        return
    out = Stdout()
    sending = report.sending
    if sending is not None and sending.command == "retry" and not sending.to_send:
        out.line(f"nothing to retry: {_sending_counts(sending)}")
        return
    p = report.result.progress
    sent = (
        f"sent {_n(p.requests, 'request')} for {_n(p.total, 'item')} in "
        f"{p.elapsed:.1f}s"
        if p.total
        else "nothing sent"
    )
    out.line(f": {sent}; manifest {report.manifest}", bold=report.job, whole=True)
    if report.replayed or report.adopted:
        out.line(
            f"recorded {_n(report.replayed + report.adopted, 'answer')} a stopped run "
            "was paid for but had not stored (from its journal and image files)"
        )
    if report.recovered:
        out.line(f"resumed {_n(report.recovered, 'item')} a stopped run left open")
    _status_tables(out, report.status.as_dict())


def run_notes(report: RunReport, retry: str | None = None) -> None:
    """Why a run ended early, when a budget cap or Ctrl-C ended it, and `retry`,
    the command that sends its failed or blocked items again (stderr)."""
    result = report.result
    if result.budget_stop:
        err(
            f"stopped: {result.budget_stop}; nothing past it was sent. Raise "
            "`budget:` in the job file or pass --max-requests/--max-images/"
            "--max-cost, then submit again to continue"
        )
    if result.batches_left:
        # Each line fits 80 columns.
        them = _n(result.batches_left, "batch", "batches")
        how = (
            "returned once they existed"
            if result.detached
            else "stopped waiting"
            if result.interrupted
            else "still running"
        )
        goes = "goes" if result.batches_left == 1 else "go"
        err(f"{how}: {them} {goes} on at the API (half price, up to 24 h)")
        err(f"`runner submit` collects them; `runner cancel {report.job}` cancels")
    if result.interrupted and result.progress.interrupts >= 2:
        # Each line fits 80 columns.
        abandoned = _n(result.abandoned, "request")
        err(
            f"interrupted twice: {abandoned} in flight abandoned (possibly billed)"
            if result.abandoned
            else "interrupted twice: no request was in flight"
        )
        err(INTERRUPTED_RESUME)
    elif result.interrupted:
        err(INTERRUPTED)
    if retry is not None:
        counts = report.status.counts
        failed, blocked = counts["failed"], counts["blocked"]
        if failed and blocked:
            left = f"{_n(failed, 'item')} failed, {blocked:,} blocked"
        else:
            left = f"{_n(failed + blocked, 'item')} {'failed' if failed else 'blocked'}"
        them = "it" if failed + blocked == 1 else "them"
        err(f"{left}; to send {them} again:\n  {retry}")


def sending(about: Sending) -> None:
    """What a submit or retry is about to send, and its estimated cost (stderr)."""
    err(_sending_line(about))


def review(report: ReviewReport, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(f"gallery: {report.index}")
    sheets = report.index.parent / "contact"
    click.echo(f"contact sheets: {len(report.contact_sheets)} in {sheets}")


SERVE_KEYS = "j/k next/previous · s star · x reject · n note · c compare · ? help"


def serving(report: Serving, as_json: bool) -> None:
    """Where `review --serve` answers, once it does."""
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(f"serving the gallery of {report.job} at {report.url}")
    click.echo(f"  keys: {SERVE_KEYS}")
    click.echo("  Ctrl-C stops it; every change is saved as it is made")


def served(report: ServeReport) -> None:
    """How a served gallery ended (stderr: under --json stdout held `serving`)."""
    if report.index is None:
        err(f"stopped serving {report.job}; no mark changed")
    else:
        err(
            f"stopped serving {report.job}; {report.changes:,} change(s) saved, "
            f"the gallery shows them: {report.index}"
        )


def removal(report: Removal, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    images = f", {report.images:,} image file(s) deleted" if report.images else ""
    if report.what == "job":
        click.echo(
            f"removed job {report.job}: {report.items:,} item(s), "
            f"{report.attempts:,} attempt(s){images}"
        )
    elif report.items:
        click.echo(
            f"pruned {report.items:,} stale item(s) of {report.job} with "
            f"{report.attempts:,} attempt(s){images}"
        )
    elif not report.kept and not report.waiting:
        click.echo(f"{report.job} has no stale items")
    if report.kept:
        click.echo(
            f"kept {report.kept:,} stale item(s) of {report.job}: an image of theirs "
            f"is marked (`runner mark {report.job} IMAGE --clear` lets prune take it)"
        )
    if report.waiting:
        click.echo(
            f"kept {report.waiting:,} stale item(s) of {report.job}: waiting in a "
            f"live batch, paid for (`runner submit` collects the results, `runner "
            f"cancel {report.job}` stops the batch; prune takes them after)"
        )


def job_list(jobs: JobList, as_json: bool) -> None:
    if as_json:
        print_json(jobs.as_dict())
        return
    if not jobs.jobs:
        click.echo(f"no jobs in {jobs.output}")
        return
    out = Stdout()
    # On a terminal simulated items ride along in "succeeded" to save width;
    # through a pipe they get their own column.
    simulated: list[Column] = [] if out.terminal else [Column("simulated", "number")]
    rows: list[list[Cell]] = []
    for s in jobs.jobs:
        c = s.counts
        done: list[Cell] = [c["succeeded"], c["simulated"]]
        if out.terminal:
            sim = f" (+{c['simulated']:,} sim.)" if c["simulated"] else ""
            done = [f"{c['succeeded']:,}{sim}"]
        rows.append(
            [
                s.name, sum(c.values()), *done, c["failed"], c["blocked"],
                c["pending"] + c["running"], s.updated_at[:19].replace("T", " "),
            ]
        )  # fmt: skip
    out.table(
        [
            Column("job"), Column("items", "number"), Column("succeeded", "prose"),
            *simulated, Column("failed", "number"), Column("blocked", "number"),
            Column("pending", "number"), Column("updated", "prose"),
        ],
        rows,
    )  # fmt: skip


_DONE = {"star": "starred", "reject": "rejected", "clear": "cleared", "note": "noted"}


def marking(report: MarkReport, as_json: bool) -> None:
    """What `runner mark` changed: a line, then each image with its mark now."""
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(f"{report.job}: {_DONE[report.change]} {len(report.marks):,} image(s)")
    for m in report.marks:
        note = f"  {m.note}" if m.note else ""
        click.echo(f"  {m.mark or '-':<6} {m.image}{note}")


def export(report: ExportReport, as_json: bool) -> None:
    """What `runner export` copied (stdout), and the images it could not (stderr)."""
    data = report.as_dict()
    if as_json:
        print_json(data)
    elif not report.exported and not report.missing:
        chosen = f" marked {report.marked}" if report.marked else ""
        click.echo(f"{report.job} has no images{chosen} to export")
    else:
        same, updated = data["unchanged"], data["sidecars_updated"]
        unchanged = f", {same:,} already there" if same else ""
        if updated:
            unchanged += f" ({updated:,} sidecar(s) updated)"
        click.echo(
            f"{report.job}: copied {data['copied']:,} image(s) with JSON sidecars to "
            f"{report.dest}{unchanged}"
        )
    for image in report.missing:
        warning(f"{image} is missing from the job folder; not exported")


@contextmanager
def progress(quiet: bool) -> Iterator[Callable[[RunProgress], None] | None]:
    """A live progress bar on a terminal, periodic plain lines otherwise (stderr);
    a line of its own when the run starts to stop (Ctrl-C, a cap, an error)."""
    if quiet:
        yield None
        return
    from rich.console import Console

    err_console = Console(stderr=True)
    said: list[tuple[int, str | None]] = [(0, None)]  # the stop last said

    def stop_line(p: RunProgress) -> str | None:
        """The line to say about how the run stops, once per change."""
        stage = (p.interrupts, p.stopping)
        if stage == said[0]:
            return None
        said[0] = stage
        return _stop_line(p)

    if err_console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        bar = Bar(
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=err_console,
        )
        task = bar.add_task("items", total=None, detail="")
        with bar:

            def update(p: RunProgress) -> None:
                line = stop_line(p)
                if line is not None:
                    bar.console.print(line, highlight=False)  # above the bar
                bar.update(task, total=p.total, completed=p.finished, detail=_detail(p))

            yield update
        return

    last = [0.0]

    def plain(p: RunProgress) -> None:
        if not p.total:
            return  # the line before the run said there is nothing to send
        now = time.monotonic()
        line = stop_line(p)
        if line is not None:
            err_console.print(line, highlight=False)
        if p.finished == p.total or line or now - last[0] >= PLAIN_PROGRESS_EVERY:
            last[0] = now
            err_console.print(
                f"[{p.finished:,}/{p.total:,}] {_detail(p)}{_eta(p)}", highlight=False
            )

    yield plain


@dataclass(frozen=True, slots=True)
class Column:
    """A table column and how it gives way on a narrow terminal: "prose" wraps at
    spaces; a "name" (left-aligned) and a "number" (right-aligned) never do."""

    header: str
    kind: Literal["name", "prose", "number"] = "name"


class Stdout:
    """One command's stdout. On a terminal (as rich sees it: a tty, or
    TTY_COMPATIBLE=1 / FORCE_COLOR; COLUMNS sets the width): bold lead words,
    lines wrapped at spaces, tables fitted to the width. Through a pipe: plain
    lines as written, and each table a header line and tab-separated rows (plain
    integers, empty for none), set off from other lines by a blank line."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()
        self.terminal = self.console.is_terminal
        self._printed = False
        self._after_table = False

    def line(self, text: str, *, bold: str = "", whole: bool = False) -> None:
        """`bold` then `text`; `whole`: the line holds a path, which is never
        broken (the terminal wraps it, if it must, as one line)."""
        self._start(table=False)
        if not self.terminal:
            click.echo(bold + text)
            return
        from rich.text import Text

        self.console.print(Text.assemble((bold, "bold"), text), soft_wrap=whole)

    def table(
        self, columns: Sequence[Column], rows: Iterable[Sequence[Cell]], title: str = ""
    ) -> None:
        """Rows of cells under `columns`; the title is shown on a terminal only.
        A terminal too narrow for the names and numbers gets one record per row
        (header and value on each line) instead."""
        self._start(table=True)
        if not self.terminal:
            click.echo("\t".join(c.header for c in columns))
            for row in rows:
                click.echo("\t".join(_plain_cell(cell) for cell in row))
            return
        from rich import box
        from rich.table import Table
        from rich.text import Text

        texts = [[_shown_cell(cell) for cell in row] for row in rows]
        widths = _fit(columns, texts, self.console.width)
        if widths is None:
            self._records(columns, texts, title)
            return
        table = Table(
            title=title or None,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, COLUMN_GAP - 1, 0, 0),
            header_style="bold",
        )
        for column, width in zip(columns, widths, strict=True):
            table.add_column(
                column.header,
                justify="right" if column.kind == "number" else "left",
                width=width,
                overflow="fold",
            )
        for row_texts in texts:
            table.add_row(*(Text(t) for t in row_texts))
        self.console.print(table)

    def _records(
        self, columns: Sequence[Column], texts: Sequence[Sequence[str]], title: str
    ) -> None:
        from rich.table import Table
        from rich.text import Text

        if title:
            self.console.print(Text(title, style="table.title"))
        grid = Table.grid(padding=(0, COLUMN_GAP, 0, 0), pad_edge=False)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for n, row in enumerate(texts):
            if n:
                grid.add_row()
            for column, text in zip(columns, row, strict=True):
                grid.add_row(column.header, Text(text))
        self.console.print(grid)

    def _start(self, *, table: bool) -> None:
        if not self.terminal and self._printed and (table or self._after_table):
            click.echo("")
        self._printed, self._after_table = True, table


def _fit(
    columns: Sequence[Column], texts: Sequence[Sequence[str]], width: int
) -> list[int] | None:
    """Column widths for a table `width` wide, prose columns narrowed (widest
    first) down to their longest word (or PROSE_FOLD); None when names and
    numbers do not fit."""
    from rich.cells import cell_len

    room = width - COLUMN_GAP * (len(columns) - 1)
    widths = [
        max([cell_len(c.header), *(cell_len(row[i]) for row in texts)])
        for i, c in enumerate(columns)
    ]
    floor = {
        i: max(
            [cell_len(c.header), *(min(_longest_word(r[i]), PROSE_FOLD) for r in texts)]
        )
        for i, c in enumerate(columns)
        if c.kind == "prose"
    }
    while sum(widths) > room:
        wide = [i for i in floor if widths[i] > floor[i]]
        if not wide:
            return None
        widths[max(wide, key=lambda i: widths[i])] -= 1
    return widths


def _longest_word(text: str) -> int:
    from rich.cells import cell_len

    return max([0, *(cell_len(word) for word in text.split())])


def _shown_cell(cell: Cell) -> str:
    if cell is None:
        return "-"
    return f"{cell:,}" if isinstance(cell, int) else cell


def _plain_cell(cell: Cell) -> str:
    """A cell in a tab-separated row: tabs and line breaks become spaces."""
    if cell is None:
        return ""
    return " ".join(str(cell).replace("\t", " ").splitlines())


def _gallery_note(report: RunReport, *, quiet: bool) -> None:
    step = report.gallery
    if step is None:
        return
    if step.error is not None:
        err(
            f"warning: the gallery could not be rebuilt ({step.error}); try "
            "`runner review`"
        )
    elif not quiet:
        err(f"gallery: {step.index}")


def _status_tables(out: Stdout, data: dict[str, Any], by: Sequence[str] = ()) -> None:
    counts = data["counts"]
    shown = ("succeeded", "simulated", "failed", "blocked", "pending", "running")
    columns = [Column(name, "number") for name in ("items", *shown)]
    row: list[Cell] = [data["total"], *(counts[name] for name in shown)]
    if out.terminal:
        out.table(columns, [row], title=f"job {data['job']}")
    else:  # no titles through a pipe: the job is a column
        out.table([Column("job"), *columns], [[data["job"], *row]])
    if counts["simulated"]:
        out.line(
            f"simulated: {counts['simulated']:,} item(s) done by --simulate only, "
            "not billed and in no total below; a submit without --simulate sends "
            "them"
        )
    if data["stale"]:
        out.line(stale_note(data["job"], data["stale"]))
    for line in _batch_lines(counts["in_batch"], data["batches"]):
        out.line(line)
    marks = data["marks"]
    if any(marks.values()):
        out.line(
            f"marks: {marks['star']:,} starred, {marks['reject']:,} rejected, "
            f"{marks['noted']:,} with a note"
        )
    usage = data["usage"]
    req = data["requests"]
    out.line(
        f"tokens: prompt {usage['promptTokenCount']:,}, output "
        f"{usage['candidatesTokenCount']:,}, thinking {usage['thoughtsTokenCount']:,}"
        f", total {usage['totalTokenCount']:,}"
    )
    per_success = data["attempts_per_success"]
    out.line(
        f"requests: {req['sent']:,} sent, {req['unknown']} with an unknown outcome "
        f"(possibly billed), {req['paid_failed']} billed without an image"
        + (f"; {per_success} per success" if per_success else "")
    )
    if data["cost"]:
        cost = data["cost"]
        out.line(
            f"spend: ${cost['total_usd']:,.4f} (${cost['billed_usd']:,.4f} from "
            f"usage + ${cost['possibly_billed_usd']:,.4f} estimated for unknown "
            f"outcomes; prices as of {data['price']['as_of']})"
        )
    numbers = "items ok failed blocked pending requests tokens USD".split()
    for axis in by:
        out.table(
            [Column(axis), *(Column(n, "number") for n in numbers)],
            [
                [
                    value, g["items"], g["succeeded"], g["failed"], g["blocked"],
                    g["pending"] + g["running"], g["requests"],
                    g["usage"]["totalTokenCount"],
                    None if g["cost"] is None else f"{g['cost']['total_usd']:.4f}",
                ]
                for value, g in data["by"][axis].items()
            ],
            title=f"by {axis}",
        )  # fmt: skip
    if data["failures"]:
        out.table(
            [Column("status"), Column("count", "number"), Column("reason", "prose")],
            [[f["status"], f["count"], f["reason"]] for f in data["failures"]],
            title="failures by reason",
        )


def _batch_lines(in_batch: int, batches: Sequence[dict[str, Any]]) -> list[str]:
    """The items in live batches, and each live batch as last seen (SPEC 7); the
    uploaded inputs of closed ones that could not be deleted."""
    live = [b for b in batches if b["live"]]
    lines = []
    if in_batch or live:
        lines.append(
            f"in batches: {_n(in_batch, 'item')} wait for results in "
            f"{_n(len(live), 'live batch', 'live batches')}; `runner submit` "
            "collects them, `runner cancel` cancels them"
        )
    for b in live:
        lines.append(f"  {_batch_line(b)}")
    for b in batches:
        if not b["live"] and b.get("input_file"):
            lines.append(
                f"{b['display_name']}: its uploaded input {b['input_file']} could "
                "not be deleted; the API deletes it 48 hours after its upload"
            )
    return lines


def _batch_line(b: Mapping[str, Any]) -> str:
    """`demo-batch-3 running: 40 of 100 done (seen 12:03:04)`."""
    state = batch_state_word(b["state"])
    stats = b["stats"]
    done = ""
    if stats["requests"]:
        finished = (stats["succeeded"] or 0) + (stats["failed"] or 0)
        done = f": {finished:,} of {stats['requests']:,} done"
    seen = f" (seen {b['seen_at'][11:19]} UTC)" if b["seen_at"] else ""
    return f"{b['display_name']} {state}{done}{seen}"


def batch_state_word(state: str | None) -> str:
    """BATCH_STATE_RUNNING (or JOB_STATE_RUNNING) -> running; None: creating."""
    if not state:
        return "creating"
    return state.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_").lower()


def _detail(p: RunProgress) -> str:
    """The counts beside the bar, short enough for 80 columns: `running` is the
    requests in flight, `saving` the answers being written."""
    parts = [f"ok {p.succeeded:,}"]
    parts += [f"{name} {n:,}" for name, n in (("failed", p.failed),
              ("blocked", p.blocked)) if n]  # fmt: skip
    parts.append(f"running {p.running:,}")
    if p.saving:
        parts.append(f"saving {p.saving:,}")
    parts.append(f"{p.tokens:,} tok")
    if p.retries:
        parts.append(_n(p.retries, "retry", "retries"))
    if p.limit and p.limit < p.concurrency:
        parts.append(f"slowed to {p.limit}")
    if p.stopping:
        parts.append("stopping")
    if p.batches:
        parts.append(_batches_detail(p.batches))
    return " · ".join(parts)


def _batches_detail(batches: Sequence[BatchShown]) -> str:
    """`2 batches: running 40/100, pending`: each batch's state and answers."""
    shown = []
    for b in batches[-3:]:
        state = batch_state_word(b.state)
        shown.append(f"{state} {b.done:,}/{b.requests:,}" if b.done else state)
    more = f" (+{len(batches) - 3} more)" if len(batches) > 3 else ""
    return f"{_n(len(batches), 'batch', 'batches')}: {', '.join(shown)}{more}"


def _eta(p: RunProgress) -> str:
    if not p.finished or p.finished >= p.total:
        return ""
    left = round(p.elapsed / p.finished * (p.total - p.finished))
    hours, minutes, seconds = left // 3600, left // 60 % 60, left % 60
    shown = (
        f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    )
    return f" | eta {shown}"


def _stop_line(p: RunProgress) -> str | None:
    """How the run is stopping, said once when it starts to (the Ctrl-C lines fit
    80 columns, whatever the counts)."""
    in_flight = _n(p.running, "request")
    if p.interrupts >= 2:
        if not p.running:
            return "interrupted again: stopping now"
        return f"interrupted again: abandoning {in_flight} in flight"
    if p.interrupts:
        if not p.running:
            return "interrupted: no request in flight; stopping"
        return (
            f"interrupted: finishing {in_flight} in flight (Ctrl-C again abandons them)"
        )
    if p.stopping:
        return f"stopping: {p.stopping}"
    return None


def _sending_counts(about: Sending) -> str:
    """`demo: 36 items: 12 done, 24 new, 3 stale`: the job's items by what a
    submit or retry makes of them."""
    stored = about.stored
    simulated = stored.get("simulated", 0)
    done = stored.get("succeeded", 0) + (simulated if about.simulated else 0)
    counts = {
        "done": done,
        "new": about.new,
        "pending": stored.get("pending", 0) + stored.get("running", 0),
        # a real submit sends them again (SPEC 5)
        "simulated": 0 if about.simulated else simulated,
        "failed": stored.get("failed", 0),
        "blocked": stored.get("blocked", 0),
        "stale": about.stale,
    }
    shown = ", ".join(f"{n:,} {name}" for name, n in counts.items() if n)
    return f"{about.job}: {_n(about.items, 'item')}: {shown or 'none'}"


def _sending_line(about: Sending) -> str:
    """`demo: 36 items: 12 done, 24 new; sending 24 (est. $1.61)`; by batch,
    `sending 24 by batch (est. $0.81 at the batch price, $1.61 interactive)`."""
    counts = _sending_counts(about)
    if not about.to_send:
        return f"{counts}; nothing to send"
    how = " by batch" if about.by_batch else ""
    if about.cost_usd is None:
        estimate = "no price known for its model"
    elif about.by_batch and about.batch_cost_usd is not None:
        estimate = (
            f"est. ${about.batch_cost_usd:,.2f} at the batch price, "
            f"${about.cost_usd:,.2f} interactive"
        )
    else:
        estimate = f"est. ${about.cost_usd:,.2f}"
    if not about.simulated:
        return f"{counts}; sending {about.to_send:,}{how} ({estimate})"
    if about.cost_usd is not None:
        estimate += " if real"
    # SPEC 5: simulated usage is never money
    return f"{counts}; simulating {about.to_send:,}{how} ({estimate}; nothing is spent)"


def _n(count: int, noun: str, plural: str | None = None) -> str:
    """`1 item`, `2 items`, `1,000 items`."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def starter(report: Starter, as_json: bool) -> None:
    """What `runner init` wrote, and the commands to run next."""
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(f"wrote {report.job_file}")
    click.echo(f"      {report.schema_file} (its JSON Schema, for editors)")
    click.echo(f"      {report.refs}/ (reference images go here)")
    click.echo("next:")
    click.echo(f"  runner plan {report.job_file}")
    click.echo(f"  runner submit {report.job_file} --simulate")
