"""Error answers: an HTTP status and its error body, classified into an `Outcome`.

Owns: parsing Google's and relays' error bodies (JSON or an HTML page), the status
rules of SPEC section 1 (which answers stop the whole run: a rejected key, no
access, no balance, a quota of 0 or a spent daily one, an unknown model or route, an
unserved location), an error's identity, and the retry hints (`Retry-After`,
`RetryInfo.retryDelay`). Must not send anything; the body it gets is redacted.
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

    def error_info_reason(self) -> str:
        """Google's `ErrorInfo.reason` (e.g. API_KEY_INVALID), or ""."""
        for detail in self.details:
            if str(detail.get("@type", "")).endswith("ErrorInfo"):
                reason = detail.get("reason")
                return reason if isinstance(reason, str) else ""
        return ""

    def identity(self, status: int) -> str:
        """What makes two error answers "the same failure": the HTTP status, the
        label (Google's `error.status`, else a relay's code) and `ErrorInfo.reason`."""
        return " ".join(
            p for p in (str(status), self.label, self.error_info_reason()) if p
        )

    def rejects_key(self) -> bool:
        """Google's answer to a bad key: 400 INVALID_ARGUMENT, "API key not valid"
        (continuedev/continue#8516) or "API key expired. Please renew the API key."
        (continuedev/continue#11336), both with `ErrorInfo.reason` API_KEY_INVALID.
        The message alone counts too: relays drop details."""
        return self.error_info_reason() == "API_KEY_INVALID" or self.message.startswith(
            ("API key not valid", "API key expired")
        )


def classify_error(
    status: int,
    headers: httpx.Headers,
    body: bytes,
    *,
    url: str = "",
    model: str = "",
) -> Outcome:
    """The outcome of an answer with error `status` (or an error code inside a 200).

    `url` and `model` are the request's: a run-fatal reason names them, so the
    user knows what to change. Errors that every other request would meet too
    (SPEC section 1) are FATAL_RUN; other 4xx fail only their item.
    """
    error = parse_error(body)
    summary = error.summary(status)
    code = error.identity(status)
    at = f" at {url}" if url else ""

    def fatal(reason: str) -> Outcome:
        return Outcome(Kind.FATAL_RUN, reason, error_code=code)

    if 400 <= status < 500 and (status == 402 or error.mentions_balance()):
        return fatal(
            f"the account is out of balance or quota ({summary}); top it up, then "
            "resume with `runner submit`"
        )
    if status == 401 or (status == 400 and error.rejects_key()):
        return fatal(
            f"the API rejected the key{at}; check the API key and --base-url "
            f"({summary})"
        )
    if status == 403:
        # Google: PERMISSION_DENIED, "the API key doesn't have the required
        # permissions" (ai.google.dev/gemini-api/docs/troubleshooting, error codes).
        return fatal(
            f"the API refused access{at}; check the API key, its permissions and "
            f"--base-url ({summary})"
        )
    if status == 404:
        return fatal(_not_found(error, summary, url, model))
    if status == 400 and error.label == "FAILED_PRECONDITION":
        # "User location is not supported for the API use." (gemini-cli#1614), or
        # "Gemini API free tier is not available in your country. Please enable
        # billing ..." (ai.google.dev/gemini-api/docs/troubleshooting): the same
        # for every request from this key and place.
        return fatal(
            f"the API does not serve this key from here{at}; call it from a "
            "supported region, enable billing for the key's project, or go through "
            f"a relay with --base-url ({summary})"
        )
    if status == 429:
        # The limit first: a limit of 0 is no quota at all for this model (image
        # models give free-tier keys none), not a daily quota that will reset.
        if (zero := _zero_quota(error)) is not None:
            quota, quota_model = zero
            named = quota_model or model
            whose = f"model {named!r}" if named else "this model"
            return fatal(
                f"this key has no quota for {whose} ({quota} has a limit of 0); "
                "enable billing for the key's project or use another key, then "
                f"`runner submit` ({summary})"
            )
        if daily := _daily_quota(error.details):
            return fatal(
                f"daily quota {daily} is used up ({summary}); the run resumes with "
                "`runner submit` once it resets"
            )
    if status in TRANSIENT_STATUSES or 500 <= status < 600:
        return Outcome(
            Kind.TRANSIENT,
            summary,
            retry_after=_max_or_none(
                _retry_after_header(headers.get("retry-after")),
                _retry_delay(error.details),
            ),
            error_code=code,
        )
    if 400 <= status < 500:
        return Outcome(Kind.FATAL_ITEM, summary, error_code=code)
    if 300 <= status < 400:
        # A redirected POST is never replayed; the base URL is wrong for every item.
        where = headers.get("location", "")
        return fatal(
            f"HTTP {status} redirect{f' to {where}' if where else ''}; set the base "
            "URL to the final address"
        )
    return Outcome(Kind.UNKNOWN, f"unexpected {summary}", error_code=code)


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


def _not_found(error: ApiError, summary: str, url: str, model: str) -> str:
    """A 404: Google's JSON "models/X is not found ..." names the model; anything
    else (an HTML page, a relay's or a server's not-found) means the base URL has
    no such route. Either way every other request would get the same."""
    named = _MODEL_NOT_FOUND.search(error.message) if error.message else None
    if named is not None or (error.message and error.label == "model_not_found"):
        name = model or (named.group(1) if named else "")
        what = f"model {name!r}" if name else "the model"
        where = f" at {url}" if url else ""
        return f"{what} is not found{where}; check `model:` in the job file ({summary})"
    where = f"{url}: " if url else ""
    return f"{where}no such route (404); check --base-url ({summary})"


# Google: "models/gemini-x is not found for API version v1beta, or is not supported
# for generateContent" (ai.google.dev/gemini-api/docs/troubleshooting: 404 NOT_FOUND).
_MODEL_NOT_FOUND = re.compile(r"\bmodels/([^\s,]+) is not found")
# "Quota exceeded for metric: ..., limit: 0, model: gemini-..." in Google's message
# (google-gemini/gemini-cli#22486, googleapis/js-genai#1322), for relays that pass
# the message on without its details.
_LIMIT_ZERO = re.compile(r"\blimit:\s*0(?![\d.])(?:,\s*model:\s*([\w.-]+))?")


def _zero_quota(error: ApiError) -> tuple[str, str] | None:
    """(quota id, model) of a quota whose limit is 0, from `QuotaFailure` violations
    (`quotaValue` "0", with `quotaDimensions.model`; google/langextract#50,
    gemini-cli#8437) or from the message; None if every limit is above 0."""
    for violation in _violations(error.details):
        value = violation.get("quotaValue")
        if str(value).strip() == "0":
            dimensions = violation.get("quotaDimensions")
            model = dimensions.get("model") if isinstance(dimensions, dict) else None
            quota = violation.get("quotaId") or violation.get("quotaMetric")
            return (
                quota if isinstance(quota, str) else "a quota",
                model if isinstance(model, str) else "",
            )
    if match := _LIMIT_ZERO.search(error.message):
        return "a quota", match.group(1) or ""
    return None


def _violations(details: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for detail in details:
        if str(detail.get("@type", "")).endswith("QuotaFailure"):
            violations = detail.get("violations")
            if isinstance(violations, list):
                found.extend(v for v in violations if isinstance(v, dict))
    return found


def _daily_quota(details: Sequence[Mapping[str, Any]]) -> str | None:
    for violation in _violations(details):
        quota_id = violation.get("quotaId")
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
