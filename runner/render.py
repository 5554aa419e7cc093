"""How the reports look: rich tables and summary lines, the progress display, JSON.

Owns: stdout (tables, summaries, `--json`), stderr lines (warnings, notes, errors),
the live progress bar on a terminal and plain progress lines otherwise. Everything
it shows comes from a report in `runner.reports`; it decides nothing, asks nothing
and never exits.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from runner import outputs
from runner.reports import stale_note

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from runner.reports import (
        Confirmation,
        JobList,
        PlanPreview,
        Removal,
        ReviewReport,
        RunProgress,
        RunReport,
        StatusReport,
    )

PLAIN_PROGRESS_EVERY = 2.0  # seconds between progress lines when not on a terminal
INTERRUPTED = "interrupted: unfinished items stay pending; submit again to resume"


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def err(message: str) -> None:
    """One line on stderr."""
    click.echo(message, err=True)


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
    console = Console()
    console.print(
        f"[bold]{data['job']}[/] ({data['file']}): {data['items']} items, "
        f"{data['new']} new, {data['to_send']} to send"
    )
    if data["derived"]:
        d = data["derived"]
        marked = d["marked"] if isinstance(d["marked"], str) else "listed"
        console.print(
            f"  from {d['from']} ({d['mode']}, marked {marked}): {d['parents']} "
            f"parent image(s), {d['parents_to_send']} with cells to send",
            highlight=False,
        )
    for axis, counts in data["axes"].items():
        shown = ", ".join(f"{value} ({n})" for value, n in counts.items())
        console.print(f"  {axis:<13} {len(counts)} value(s): {shown}", highlight=False)
    if data["stored"]:
        stored = ", ".join(f"{n} {s}" for s, n in sorted(data["stored"].items()))
        console.print(f"  already in the store: {stored}")
    if data["duplicates_dropped"]:
        console.print(
            f"  {data['duplicates_dropped']} cell(s) dropped: same request as another"
        )
    for label, key in (("to send", "to_send"), ("whole plan", "whole_plan")):
        est = data["estimate"][key]
        cost = (
            "no price known" if est["cost_usd"] is None else f"${est['cost_usd']:,.2f}"
        )
        basis = ""
        if est["recorded_answers"]:
            basis = f" (estimated from {est['recorded_answers']:,} recorded answers)"
        console.print(
            f"  estimate, {label}: {est['requests']:,} requests, "
            f"{est['tokens']['totalTokenCount']:,} tokens, {cost}{basis}, "
            f"up to {outputs.describe_bytes(est['bytes'])} of images",
            highlight=False,
        )
    caps = {k: v for k, v in data["budget"].items() if v is not None}
    if caps:
        shown = ", ".join(f"{k} {v}" for k, v in caps.items())
        console.print(f"  budget: {shown}", highlight=False)


def status(report: StatusReport, by: Sequence[str], as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    _status_tables(Console(), report.as_dict(), by)


def run(report: RunReport, as_json: bool) -> None:
    """The gallery step's note (stderr), then the run and the job's status."""
    _gallery_note(report, quiet=as_json)
    if as_json:
        print_json(report.as_dict())
        return
    console = Console()
    p = report.result.progress
    console.print(
        f"[bold]{report.job}[/]: sent {p.requests} request(s) for {p.total} "
        f"item(s) in {p.elapsed:.1f}s; manifest {report.manifest}",
        highlight=False,
    )
    if report.replayed or report.adopted:
        console.print(
            f"recorded {report.replayed + report.adopted} answer(s) a stopped run "
            "was paid for but had not stored (from its journal and image files)"
        )
    if report.recovered:
        console.print(f"resumed {report.recovered} item(s) a stopped run left open")
    _status_tables(console, report.status.as_dict())


def run_notes(report: RunReport) -> None:
    """Why a run ended early, when a budget cap or Ctrl-C ended it (stderr)."""
    if report.result.budget_stop:
        err(
            f"stopped: {report.result.budget_stop}; nothing past it was sent. Raise "
            "`budget:` in the job file or pass --max-requests/--max-images/"
            "--max-cost, then submit again to continue"
        )
    if report.result.interrupted:
        err(INTERRUPTED)


def review(report: ReviewReport, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(f"gallery: {report.index}")
    sheets = report.index.parent / "contact"
    click.echo(f"contact sheets: {len(report.contact_sheets)} in {sheets}")


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
    else:
        click.echo(f"{report.job} has no stale items")


def job_list(jobs: JobList, as_json: bool) -> None:
    if as_json:
        print_json(jobs.as_dict())
        return
    if not jobs.jobs:
        click.echo(f"no jobs in {jobs.output}")
        return
    table = Table(
        "job", "items", "succeeded", "failed", "blocked", "pending", "updated"
    )
    for s in jobs.jobs:
        c = s.counts
        simulated = f" (+{c['simulated']} sim.)" if c["simulated"] else ""
        table.add_row(
            s.name,
            str(sum(c.values())),
            f"{c['succeeded']}{simulated}",
            str(c["failed"]),
            str(c["blocked"]),
            str(c["pending"] + c["running"]),
            s.updated_at[:19].replace("T", " "),
        )
    Console().print(table)


@contextmanager
def progress(quiet: bool) -> Iterator[Callable[[RunProgress], None] | None]:
    """A live progress bar on a terminal, periodic plain lines otherwise (stderr)."""
    err_console = Console(stderr=True)
    if quiet:
        yield None
        return
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
                bar.update(task, total=p.total, completed=p.finished, detail=_detail(p))

            yield update
        return

    last = [0.0]

    def plain(p: RunProgress) -> None:
        now = time.monotonic()
        if p.finished == p.total or p.stopping or now - last[0] >= PLAIN_PROGRESS_EVERY:
            last[0] = now
            err_console.print(
                f"[{p.finished}/{p.total}] {_detail(p)}{_eta(p)}", highlight=False
            )

    yield plain


def _gallery_note(report: RunReport, *, quiet: bool) -> None:
    step = report.gallery
    if step is None:
        return
    if step.skipped:
        err(
            f"gallery not rebuilt: {step.items:,} items is more than {step.limit:,}; "
            f"run `runner review {report.job}` when you want it"
        )
    elif step.error is not None:
        err(
            f"warning: the gallery could not be rebuilt ({step.error}); try "
            "`runner review`"
        )
    elif not quiet:
        err(f"gallery: {step.index}")


def _status_tables(
    console: Console, data: dict[str, Any], by: Sequence[str] = ()
) -> None:
    counts = data["counts"]
    table = Table(title=f"job {data['job']}", title_justify="left")
    shown = ("succeeded", "simulated", "failed", "blocked", "pending", "running")
    for name in ("items", *shown):
        table.add_column(name, justify="right")
    table.add_row(str(data["total"]), *(str(counts[name]) for name in shown))
    console.print(table)
    if counts["simulated"]:
        console.print(
            f"simulated: {counts['simulated']:,} item(s) done by --simulate only, "
            "not billed and in no total below; a submit without --simulate sends "
            "them",
            highlight=False,
        )
    if data["stale"]:
        console.print(stale_note(data["job"], data["stale"]), highlight=False)
    usage = data["usage"]
    req = data["requests"]
    console.print(
        f"tokens: prompt {usage['promptTokenCount']:,}, output "
        f"{usage['candidatesTokenCount']:,}, thinking {usage['thoughtsTokenCount']:,}"
        f", total {usage['totalTokenCount']:,}",
        highlight=False,
    )
    per_success = data["attempts_per_success"]
    console.print(
        f"requests: {req['sent']:,} sent, {req['unknown']} with an unknown outcome "
        f"(possibly billed), {req['paid_failed']} billed without an image"
        + (f"; {per_success} per success" if per_success else ""),
        highlight=False,
    )
    if data["cost"]:
        cost = data["cost"]
        console.print(
            f"spend: ${cost['total_usd']:,.4f} (${cost['billed_usd']:,.4f} from "
            f"usage + ${cost['possibly_billed_usd']:,.4f} estimated for unknown "
            f"outcomes; prices as of {data['price']['as_of']})",
            highlight=False,
        )
    for axis in by:
        groups = Table(
            axis, "items", "ok", "failed", "blocked", "pending", "requests",
            "tokens", "USD", title=f"by {axis}", title_justify="left",
        )  # fmt: skip
        for value, g in data["by"][axis].items():
            usd = "-" if g["cost"] is None else f"{g['cost']['total_usd']:.4f}"
            groups.add_row(
                value, str(g["items"]), str(g["succeeded"]), str(g["failed"]),
                str(g["blocked"]), str(g["pending"] + g["running"]),
                str(g["requests"]), f"{g['usage']['totalTokenCount']:,}", usd,
            )  # fmt: skip
        console.print(groups)
    if data["failures"]:
        failures = Table("status", "count", "reason", title="failures by reason")
        for f in data["failures"]:
            failures.add_row(f["status"], str(f["count"]), f["reason"])
        console.print(failures)


def _detail(p: RunProgress) -> str:
    parts = [
        f"ok {p.succeeded}",
        f"failed {p.failed}",
        f"blocked {p.blocked}",
        f"running {p.running}",
        f"{p.tokens:,} tok",
    ]
    if p.retries:
        parts.append(f"{p.retries} retries")
    if p.limit and p.limit < p.concurrency:
        parts.append(f"slowed to {p.limit}")
    if p.stopping:
        parts.append(p.stopping)
    return " · ".join(parts)


def _eta(p: RunProgress) -> str:
    if not p.finished or p.finished >= p.total:
        return ""
    remaining = p.elapsed / p.finished * (p.total - p.finished)
    return f" | eta {int(remaining // 60)}:{int(remaining % 60):02d}"
