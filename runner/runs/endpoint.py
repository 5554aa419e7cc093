"""The API a run talks to: the simulator the CLI started, or a real base URL.

Owns: the check that a base URL is http(s), and which environment variable holds
the key for which host (Google's own endpoint or a relay). Must not send anything;
the key goes into the `Endpoint` and nowhere else.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from runner.errors import UsageError
from runner.runs.settings import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from collections.abc import Iterator

    from runner.client import Endpoint
    from runner.runs.settings import SendOptions

GOOGLE_HOST = "generativelanguage.googleapis.com"
GOOGLE_KEY_VARIABLE = "GEMINI_API_KEY"  # the key for GOOGLE_HOST, x-goog-api-key
RELAY_KEY_VARIABLE = "TOKAIFY_API_KEY"  # the key for any other host, Bearer


@contextmanager
def open_endpoint(send: SendOptions) -> Iterator[Endpoint]:
    """The API to call: the simulated one (running while this is open), or a real
    one with its key from the environment."""
    from runner.client import Endpoint

    if send.simulator is not None:
        with send.simulator() as url:
            yield Endpoint(base_url=url)
        return
    base = send.base_url or DEFAULT_BASE_URL
    parsed = urlparse(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"base URL {base!r} is not an http(s) URL; fix --base-url (or "
            f"RUNNER_BASE_URL), e.g. {DEFAULT_BASE_URL}"
        )
    if parsed.hostname == GOOGLE_HOST:
        var, auth = GOOGLE_KEY_VARIABLE, "goog"
    else:
        var, auth = RELAY_KEY_VARIABLE, "bearer"
    key = os.environ.get(var)
    if not key:
        raise UsageError(
            f"no API key: set {var} for {parsed.hostname}, or try the pipeline with "
            "--simulate (no key, no network)"
        )
    yield Endpoint(base_url=base, api_key=key, auth=auth)
