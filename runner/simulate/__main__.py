"""`python -m runner.simulate`."""

from __future__ import annotations

from runner.simulate.server import main

main()
