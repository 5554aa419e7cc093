"""`python -m runner.simulate`: the simulated API on its own, until SIGINT or SIGTERM.

Owns the command line (options map one to one onto `SimServer`'s arguments) and the
signal handling. Must not hold any behaviour of the server itself.
"""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING

import anyio

from runner.simulate.batches import DEFAULT_PENDING, DEFAULT_RUNNING
from runner.simulate.faults import (
    BATCH_FAULT_KINDS,
    DEFAULT_FAULT_MIX,
    FAULT_KINDS,
    parse_rules,
)
from runner.simulate.server import SimServer

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m runner.simulate`: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m runner.simulate",
        description="Simulated Gemini API (generateContent, Batch, Files) on loopback.",
        epilog="example: python -m runner.simulate --port 8765 --fault-rate 0.1",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds")
    parser.add_argument("--latency-jitter", type=float, default=0.0, help="seconds")
    parser.add_argument("--image-scale", type=float, default=1.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--fault-mix",
        default=",".join(DEFAULT_FAULT_MIX),
        help=f"comma-separated kinds out of: {', '.join(FAULT_KINDS)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--api-key",
        default=None,
        help="require this key (else Google's 400 for x-goog-api-key, the relay's 401)",
    )
    parser.add_argument(
        "--rpm-limit",
        type=float,
        default=None,
        help="answer 429 beyond this many requests in the trailing minute",
    )
    parser.add_argument(
        "--image-pad-bytes",
        type=int,
        default=0,
        help="pad each PNG to about this many more bytes (realistic 4K sizes)",
    )
    parser.add_argument(
        "--reference-image-tokens",
        type=int,
        default=None,
        help="tokens billed per input image (default: each model's own figure)",
    )
    parser.add_argument(
        "--thought-images",
        type=int,
        default=2,
        help="interim images a Gemini 3 model sends when asked for thoughts (0-2)",
    )
    parser.add_argument(
        "--thoughts-tokens",
        type=int,
        default=None,
        help="thinking tokens billed per answer (default: 64-191, by the prompt)",
    )
    parser.add_argument(
        "--images-per-answer",
        type=int,
        default=1,
        help="final images in each image answer, each billed",
    )
    parser.add_argument(
        "--extra-models",
        default="",
        help="comma-separated model names to serve beyond Google's",
    )
    parser.add_argument(
        "--batch-pending",
        type=float,
        default=DEFAULT_PENDING,
        help="seconds a new batch stays BATCH_STATE_PENDING",
    )
    parser.add_argument(
        "--batch-running",
        type=float,
        default=DEFAULT_RUNNING,
        help="seconds a batch runs at least before it ends",
    )
    parser.add_argument(
        "--line-error-rate",
        type=float,
        default=0.0,
        help="share of batch lines that answer an error object",
    )
    parser.add_argument(
        "--no-batch-support",
        dest="batch_support",
        action="store_false",
        help="answer the Batch and Files APIs with a relay's 404, as relays do",
    )
    parser.add_argument(
        "--faults",
        default="",
        help="fault rules as JSON, a rule or a list, e.g. "
        """'{"kind": "batch-expired", "times": 1}'; kinds also """
        + ", ".join(BATCH_FAULT_KINDS),
    )
    parser.add_argument(
        "--reuse-answers",
        action="store_true",
        help="build a plain image answer once per request content and send the "
        "same bytes to every equal request (benchmarks)",
    )
    parser.add_argument(
        "--record-latencies",
        action="store_true",
        help="keep each request's drawn latency, served at /_sim/latencies",
    )
    args = parser.parse_args(argv)
    try:
        faults = parse_rules(args.faults.encode()) if args.faults.strip() else []
    except (ValueError, TypeError) as exc:
        parser.error(f"--faults: {exc}")
    try:
        server = SimServer(
            latency=args.latency,
            latency_jitter=args.latency_jitter,
            image_scale=args.image_scale,
            api_key=args.api_key,
            fault_rate=args.fault_rate,
            rpm_limit=args.rpm_limit,
            image_pad_bytes=args.image_pad_bytes,
            reference_image_tokens=args.reference_image_tokens,
            thought_images=args.thought_images,
            thoughts_tokens=args.thoughts_tokens,
            images_per_answer=args.images_per_answer,
            reuse_answers=args.reuse_answers,
            record_latencies=args.record_latencies,
            extra_models=[m for m in args.extra_models.split(",") if m],
            fault_mix=[k for k in args.fault_mix.split(",") if k],
            seed=args.seed,
            host=args.host,
            port=args.port,
            batch_pending=args.batch_pending,
            batch_running=args.batch_running,
            line_error_rate=args.line_error_rate,
            batch_support=args.batch_support,
        )
    except ValueError as exc:
        parser.error(str(exc))
    for fault in faults:
        server.add_fault(fault)
    try:
        anyio.run(_serve_until_signal, server)
    except KeyboardInterrupt:
        pass  # SIGINT before the signal receiver was installed


async def _serve_until_signal(server: SimServer) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            url = await tg.start(server.serve)
            print(f"listening on {url}", flush=True)  # noqa: T201
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


if __name__ == "__main__":
    main()
