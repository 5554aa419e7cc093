"""The benchmark's scenarios, one module each; `--only` names the six runs.

- throughput: requests/s against the ideal and the google-genai script, and CPU
  per item in the same window (`throughput.py`);
- memory: peak RSS with ~20 MB base64 answers (`memory.py`);
- scale: one 100,000-item job (`scale_job.py`) for plan + store (`plan_store.py`),
  `runner status` (`status.py`) and resume (`resume.py`), run by `scale.py`;
- rpm: pacing under a simulated requests-per-minute limit (`rpm.py`);
- inflight: 1,024 requests in flight at real latencies and 1K answer sizes,
  against a perfect scheduler and the google-genai script (`inflight.py`);
- batch: the Batch API transport's phases and peak RSS (`batch.py`);
- review: `runner submit` as a whole process with its gallery, with `--no-review`
  and the google-genai script, small and real-size images (`review.py`);
- gallery: a 100,000-item gallery built and opened in headless Chromium
  (`gallery.py`, running `benchmarks/review_bench.py`).

Machinery more than one scenario uses belongs in `benchmarks/harness/`, not here.
"""

from __future__ import annotations

from benchmarks.scenarios.batch import run_batch
from benchmarks.scenarios.gallery import run_gallery
from benchmarks.scenarios.inflight import run_inflight
from benchmarks.scenarios.memory import run_memory
from benchmarks.scenarios.review import run_review
from benchmarks.scenarios.rpm import run_rpm
from benchmarks.scenarios.scale import run_scale
from benchmarks.scenarios.throughput import run_throughput

__all__ = [
    "run_batch",
    "run_gallery",
    "run_inflight",
    "run_memory",
    "run_review",
    "run_rpm",
    "run_scale",
    "run_throughput",
]
