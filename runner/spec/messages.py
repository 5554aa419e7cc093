"""How a user's text and an OS error are worded inside a job-file message.

Owns: quoting and shortening what the user wrote, and the short reason of an
exception. Must not build whole messages or know about YAML nodes.
"""

from __future__ import annotations


def show(text: str) -> str:
    """A user's text quoted for a message, shortened, control characters escaped."""
    if len(text) > 60:
        text = text[:57] + "..."
    return quote(text)


def quote(text: str) -> str:
    return repr(text)


def reason(exc: BaseException) -> str:
    """The short cause of an error, e.g. 'permission denied', for a message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return " ".join(str(exc).split()) or "unknown reason"
