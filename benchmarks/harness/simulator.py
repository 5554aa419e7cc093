"""The simulated API in its own process (`python -m runner.simulate`), driven over
HTTP: start, statistics, reset, installed faults, warm-up, and its CPU.

Its own process, so that the CPU and RSS a contender's child reports are the
contender's alone. Must not import the simulator (only run it).
"""

from __future__ import annotations

import concurrent.futures
import json
import select
import signal
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING, Any

from benchmarks.harness.measure import proc_cpu
from benchmarks.harness.process import REPO, BenchError, clean_env
from benchmarks.harness.workload import MODEL

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

SIM_START_TIMEOUT = 30.0
# Simulator options the rpm and memory scenarios use; with a simulator that lacks
# them, the report says what it could not measure, or how it measured instead.
SIM_RPM_OPTION = "--rpm-limit"
SIM_IMAGE_PAD_OPTION = "--image-pad-bytes"


class SimProcess:
    """`python -m runner.simulate` in a child process, driven over HTTP."""

    def __init__(
        self,
        *,
        latency: float,
        image_scale: float = 1.0,
        extra: Sequence[str] = (),
        log: Path | None = None,
        module: str = "runner.simulate",
    ) -> None:
        self.module = module  # run as `python -m <module>`, the simulator's options
        self.args = [
            "--port",
            "0",
            "--latency",
            str(latency),
            "--image-scale",
            str(image_scale),
            *extra,
        ]
        self.log = log
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimProcess:
        stderr = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                cwd=REPO,
                env=clean_env(),
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        finally:
            if self.log and not isinstance(stderr, int):
                stderr.close()
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], SIM_START_TIMEOUT)
        line = self._proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.__exit__(None, None, None)
            raise BenchError(f"the simulator did not start (said {line!r})")
        self.url = line.split()[-1]
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stats(self) -> dict[str, Any]:
        data = _http_json(f"{self.url}/_sim/stats")
        assert isinstance(data, dict)
        return data

    def requests(self) -> int:
        return int(self.stats()["requests"])

    def latencies(self) -> list[float]:
        """Each request's drawn latency since the last reset, in the order drawn
        (the simulator must run with `--record-latencies`)."""
        data = _http_json(f"{self.url}/_sim/latencies")
        assert isinstance(data, dict)
        return [float(x) for x in data["latencies"]]

    def reset(self) -> None:
        _http_json(f"{self.url}/_sim/reset", {})

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        _http_json(f"{self.url}/_sim/faults", faults)

    def cpu(self) -> float | None:
        """The simulator's CPU seconds so far (Linux /proc), None elsewhere."""
        return proc_cpu(self.pid)

    def warm(
        self,
        texts: Sequence[str],
        aspect_ratio: str,
        image_size: str,
        *,
        parallel: int = 8,
    ) -> None:
        """One request per text, `parallel` at a time, so that no contender pays
        for first renders (nor, with `--reuse-answers`, for building answers)."""
        url = f"{self.url}/v1beta/models/{MODEL}:generateContent"

        def send(text: str) -> None:
            body = {
                "contents": [{"role": "user", "parts": [{"text": text}]}],
                "generationConfig": {
                    "responseModalities": ["IMAGE"],
                    "imageConfig": {
                        "aspectRatio": aspect_ratio,
                        "imageSize": image_size,
                    },
                },
            }
            _http_json(url, body, timeout=120)

        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            list(pool.map(send, texts))
        self.reset()


def simulator_options() -> str:
    """The simulator's --help text, to see which options this version has."""
    done = subprocess.run(
        [sys.executable, "-m", "runner.simulate", "--help"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout


def _http_json(url: str, payload: Any = None, *, timeout: float = 30) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if data is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
