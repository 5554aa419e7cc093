"""Shared fixtures: a clean environment for every test, one simulated API server and
a fresh store."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from runner.simulate import SimServer
from runner.store import Store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_KEY_VARIABLES = ("TOKAIFY_API_KEY", "GEMINI_API_KEY")
# A developer's proxy must not route the tests' loopback calls (tests that are
# about proxies set these themselves).
_PROXY_VARIABLES = {
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    for name in (base, base.lower())
}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real key or RUNNER_* setting leaks in; output goes under tmp_path."""
    for name in list(os.environ):
        if (
            name in _KEY_VARIABLES
            or name in _PROXY_VARIABLES
            or name.startswith("RUNNER_")
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RUNNER_OUTPUT", str(tmp_path / "output"))


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    """One simulated API for the whole session, with tiny images (1K 1:1 is 64x64)."""
    with SimServer(image_scale=0.0625) as server:
        yield server


@pytest.fixture
def sim(sim_server: SimServer) -> Iterator[SimServer]:
    """The session simulator with statistics and fault rules cleared."""
    sim_server.reset()
    yield sim_server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store under tmp_path."""
    s = Store.for_output(tmp_path / "out")
    yield s
    s.close()
