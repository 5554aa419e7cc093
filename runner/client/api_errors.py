"""Error answers: an HTTP status and its error body, classified into an `Outcome`.

Owns: parsing Google's and relays' error bodies (JSON or an HTML page), the status
rules of SPEC section 1, out-of-balance markers, per-day quotas, and the retry hints
(`Retry-After`, `RetryInfo.retryDelay`). Must not send anything; the body it gets is
already redacted.
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.client.outcome import Kind, Outcome, clip

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error body, read as far as it could be."""

    label: str  # Google `status`, else relay `code` or `type`; may be ""
    message: str
    details: tuple[Mapping[str, Any], ...]
    raw: str  # the body as text, for non-JSON error pages

    def summary(self, status: int) -> str:
        if self.label or self.message:
            head = f"{status} {self.label}".rstrip()
            return f"{head}: {clip(self.message, 200)}" if self.message else head
        raw = clip(_strip_html(self.raw), 200)
        return f"HTTP {status}: {raw}" if raw else f"HTTP {status}"

    def mentions_balance(self) -> bool:
        haystack = " ".join((self.label, self.message, self.raw)).lower()
        return any(marker in haystack for marker in _BALANCE_MARKERS)


def classify_error(status: int, headers: httpx.Headers, body: bytes) -> Outcome:
    """The outcome of an answer with error `status` (or an error code inside a 200)."""
    error = parse_error(body)
    summary = error.summary(status)
    if 400 <= status < 500 and (status == 402 or error.mentions_balance()):
        return Outcome(
            Kind.FATAL_RUN,
            f"the account is out of balance or quota ({summary}); top it up, then "
            "resume with `runner submit`",
        )
    if status == 401:
        return Outcome(
            Kind.FATAL_RUN,
            f"the API rejected the key ({summary}); check the key and base URL",
        )
    if status == 403:
        return Outcome(
            Kind.FATAL_RUN,
            f"the API refused access ({summary}); check the key, its permissions "
            "and the base URL",
        )
    if status == 429 and (quota := _daily_quota(error.details)):
        return Outcome(
            Kind.FATAL_RUN,
            f"daily quota {quota} is used up ({summary}); the run resumes with "
            "`runner submit` once it resets",
        )
    if status in TRANSIENT_STATUSES or 500 <= status < 600:
        return Outcome(
            Kind.TRANSIENT,
            summary,
            retry_after=_max_or_none(
                _retry_after_header(headers.get("retry-after")),
                _retry_delay(error.details),
            ),
        )
    if 400 <= status < 500:
        return Outcome(Kind.FATAL_ITEM, summary)
    if 300 <= status < 400:
        # A redirected POST is never replayed; the base URL is wrong for every item.
        where = headers.get("location", "")
        return Outcome(
            Kind.FATAL_RUN,
            f"HTTP {status} redirect{f' to {where}' if where else ''}; set the base "
            "URL to the final address",
        )
    return Outcome(Kind.UNKNOWN, f"unexpected {summary}")


def parse_error(body: bytes) -> ApiError:
    """Label, message and details of an error body in any of the shapes seen."""
    raw = body.decode("utf-8", errors="replace")
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return ApiError("", "", (), raw)
    if isinstance(data, list) and data:
        data = data[0]  # Google wraps errors in a list on some endpoints
    if not isinstance(data, dict):
        return ApiError("", "", (), raw)
    error: Any = data.get("error", data)
    if isinstance(error, str):
        return ApiError("", error, (), raw)
    if not isinstance(error, dict):
        return ApiError("", "", (), raw)
    label = error.get("status") or error.get("code") or error.get("type") or ""
    message = error.get("message") or error.get("detail") or error.get("msg") or ""
    details = error.get("details")
    return ApiError(
        label=label if isinstance(label, str) else "",
        message=message if isinstance(message, str) else json.dumps(message),
        details=tuple(d for d in details if isinstance(d, dict))
        if isinstance(details, list)
        else (),
        raw=raw,
    )


_BALANCE_MARKERS = (
    "insufficient_user_quota",
    "insufficient_quota",
    "insufficient_balance",
    "insufficient balance",
    "quota is not enough",
    "balance is not enough",
    "out of balance",
    "余额不足",
    "额度不足",
)


def _daily_quota(details: Sequence[Mapping[str, Any]]) -> str | None:
    for detail in details:
        if not str(detail.get("@type", "")).endswith("QuotaFailure"):
            continue
        violations = detail.get("violations")
        for violation in violations if isinstance(violations, list) else ():
            quota_id = violation.get("quotaId") if isinstance(violation, dict) else None
            if isinstance(quota_id, str) and "PerDay" in quota_id:
                return quota_id
    return None


def _retry_delay(details: Sequence[Mapping[str, Any]]) -> float | None:
    for detail in details:
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, int | float):
                return max(0.0, float(delay))
            if isinstance(delay, str):
                try:
                    return max(0.0, float(delay.strip().removesuffix("s")))
                except ValueError:
                    return None
    return None


def _retry_after_header(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _max_or_none(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _strip_html(text: str) -> str:
    if not text.lstrip().startswith("<"):
        return text
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    return re.sub(r"<[^>]+>", " ", text)
