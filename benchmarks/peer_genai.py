r"""The script a user would write instead of the runner, for `benchmarks/bench.py`.

google-genai's async client (`client.aio.models.generate_content`) under an asyncio
semaphore, every prompt sent `--samples` times, each image written to disk as it
arrives. Nothing else: no store, no retries, no resume. The base URL points at the
simulated API:

    .venv/bin/python benchmarks/peer_genai.py --base-url http://127.0.0.1:8765 \
        --prompts prompts.txt --samples 60 --concurrency 64 --out /tmp/peer

Prints one JSON line of figures on stdout (times, process CPU, peak RSS), measured
the same way as the runner's side of the benchmark. Needs the `bench` dependency
group (`pip install google-genai`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from google import genai

MODEL = "gemini-3.1-flash-image-preview"


async def generate_all(
    client: genai.Client,
    prompts: Sequence[str],
    samples: int,
    *,
    concurrency: int,
    aspect_ratio: str,
    image_size: str | None,
    out: Path,
) -> tuple[int, int]:
    """Send every prompt `samples` times, `concurrency` at once; (images, errors)."""
    from google.genai import types

    semaphore = asyncio.Semaphore(concurrency)
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(
            aspect_ratio=aspect_ratio, image_size=image_size
        ),
    )

    async def one(index: int, prompt: str, sample: int) -> int:
        async with semaphore:
            response = await client.aio.models.generate_content(
                model=MODEL, contents=prompt, config=config
            )
        saved = 0
        for part in response.parts or []:
            if part.inline_data and part.inline_data.data and not part.thought:
                name = f"p{index:04d}_s{sample}_{saved}.png"
                (out / name).write_bytes(part.inline_data.data)
                saved += 1
        return saved

    results = await asyncio.gather(
        *(one(i, p, s) for s in range(samples) for i, p in enumerate(prompts)),
        return_exceptions=True,
    )
    images = sum(r for r in results if isinstance(r, int))
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"{len(errors)} requests failed, e.g. {errors[0]!r}", file=sys.stderr)
    return images, len(errors)


def main(argv: Sequence[str] | None = None) -> int:
    cpu_start, started = _cpu(), time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--prompts", type=Path, required=True, help="one per line")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--aspect-ratio", default="1:1")
    parser.add_argument("--image-size", default="1K")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--max-connections",
        type=int,
        help="open httpx's pool to this many connections (default: httpx's 100, "
        "which caps the requests in flight whatever --concurrency says)",
    )
    args = parser.parse_args(argv)

    # Imported here, not at the top, so that its cost is reported apart.
    from google import genai
    from google.genai import types

    imported = _mark(started, cpu_start)
    prompts = args.prompts.read_text("utf-8").splitlines()
    args.out.mkdir(parents=True, exist_ok=True)
    client = genai.Client(
        api_key="bench-not-a-key",
        http_options=types.HttpOptions(
            base_url=args.base_url,
            api_version="v1beta",
            async_client_args=_pool_args(args.max_connections),
        ),
    )

    async def run() -> tuple[int, int, dict[str, float], dict[str, float]]:
        first = _mark(started, cpu_start)
        images, errors = await generate_all(
            client,
            prompts,
            args.samples,
            concurrency=args.concurrency,
            aspect_ratio=args.aspect_ratio,
            image_size=args.image_size,
            out=args.out,
        )
        return images, errors, first, _mark(started, cpu_start)

    images, errors, first, last = asyncio.run(run())
    end = _mark(started, cpu_start)
    figures: dict[str, Any] = {
        "contender": "google-genai",
        "items": len(prompts) * args.samples,
        "images": images,
        "errors": errors,
        "imported": imported,
        "first_request": first,
        "last_image": last,
        "end": end,
        "process_cpu": _cpu(),  # since the interpreter started
        "maxrss_kb": _peak_rss_kb(),
    }
    print(json.dumps(figures), flush=True)
    return 0 if errors == 0 else 1


def _peak_rss_kb() -> int:
    """Peak resident set in KiB: VmHWM where there is /proc (`ru_maxrss` keeps a
    parent's size across fork and exec), as the runner's child measures it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _pool_args(max_connections: int | None) -> dict[str, Any] | None:
    """httpx client arguments that open the pool to `max_connections` (None: as a
    user writes the script). google-genai picks httpx or httpx2 by the type of
    what it is given, so the Limits come from the one it would use anyway."""
    if max_connections is None:
        return None
    import importlib

    try:
        httpx_module = importlib.import_module("httpx2")
    except ImportError:
        httpx_module = importlib.import_module("httpx")
    limits = httpx_module.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return {"limits": limits}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mark(started: float, cpu_start: float) -> dict[str, float]:
    """Seconds since `main` began: wall, and process CPU (every thread)."""
    return {"wall": time.monotonic() - started, "cpu": _cpu() - cpu_start}


if __name__ == "__main__":
    sys.exit(main())
