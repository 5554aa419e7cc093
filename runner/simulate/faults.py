"""The fault catalogue: every way the simulated API can misbehave, and when it does.

Owns: the kinds, `Fault` rules and their order, random faults, `[sim:...]` prompt
directives, and what each kind does to an answer (error bodies, broken image data,
padding, cut bodies, dropped connections); for batches, which batch a batch-level
kind hits and which lines fail. Must not keep counters or touch a socket: the server
applies delays, hangs and drops that the answer's mode asks for.
"""

from __future__ import annotations

import base64
import json
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.simulate.gemini import (
    KEY_INVALID,
    NO_IMAGE_KINDS,
    RELAY_401,
    Answer,
    dumps,
    google_error,
    grounding_metadata,
    json_reply,
    model_not_found,
    no_image_body,
    response_id,
    retry_info,
    success_body,
    thought_signature,
    usage,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from runner.simulate.gemini import Target
    from runner.simulate.request import Generate

FAULT_KINDS: tuple[str, ...] = (
    "429",
    "429-day",
    "500",
    "503",
    "502-relay",
    "504",
    "408",
    "401",
    "403",
    "403-balance",
    "400",
    "hang",
    "slow",
    "drop",
    "drop-mid-body",
    "truncated",
    "non-json",
    "bad-base64",
    "huge",
    "no-mime",
    "wrong-mime",
    "blocked-prompt",
    "blocked-finish",
    "text-only",
    "no-image-finish",
    "empty-candidates",
    "relay-markdown",
    "relay-url",
    # run-fatal on the real API: every other request would get the same answer
    "key-invalid",
    "permission-denied",
    "model-not-found",
    "location",
    "429-limit-0",
    "image-recitation",
    "relay-inline-dead-url",
)
# Faults of the Batch API. A batch-level kind hits a whole batch when it is created
# (its rules' `match` is looked for in the displayName, its directives in the
# prompts): "batch-expired" and "batch-failed" end it in that state with no
# results, "batch-create-lost" creates it and then drops the connection before the
# answer, "batch-create-hang" creates it and never answers (the connection is held
# until the client goes). "line-error" makes a line of a batch answer an error
# object; ordinary kinds apply to lines too. "file-delete-error" makes a
# `DELETE /v1beta/files/ID` answer 500 (its rules' `match` is looked for in the
# file's displayName). Batch kinds do nothing to a generateContent request.
BATCH_FAULT_KINDS: tuple[str, ...] = (
    "batch-expired",
    "batch-failed",
    "batch-create-lost",
    "batch-create-hang",
    "line-error",
    "file-delete-error",
)
BATCH_LEVEL_KINDS = frozenset(BATCH_FAULT_KINDS) - {"line-error", "file-delete-error"}
# What `fault_rate` draws from when no mix is given: faults a run recovers from (or
# records as unknown), never the ones that stop a whole run.
DEFAULT_FAULT_MIX: tuple[str, ...] = (
    "429",
    "500",
    "503",
    "502-relay",
    "504",
    "drop",
    "text-only",
)
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_SLOW_DELAY = 1.0
DEFAULT_HUGE_SIZE = 64 * 1024 * 1024
NON_JSON_BODY = b"<html><body>Bad gateway</body></html>"
BAD_BASE64 = "iVBORw0K!!not~base64!!"
# `[sim:KIND]`, `[sim:KIND*N]`, `[sim:KIND retry_after=S delay=S size=B]` in a prompt.
DIRECTIVE = re.compile(
    r"\[sim:(?P<kind>[a-z0-9-]+)(?:\*(?P<times>\d+))?"
    r"(?P<params>(?:\s+[a-z_]+=[0-9.]+)*)\s*\]"
)


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault rule: `match` is a prompt substring, `times` caps how often it fires."""

    kind: str
    match: str | None = None
    times: int | None = None
    rate: float = 1.0
    retry_after: float | None = None
    delay: float | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS and self.kind not in BATCH_FAULT_KINDS:
            kinds = ", ".join(FAULT_KINDS + BATCH_FAULT_KINDS)
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {kinds}")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        for name in ("retry_after", "delay", "size"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a rule from JSON, checking field names and types."""
        allowed = {
            "kind": (str,),
            "match": (str,),
            "times": (int,),
            "rate": (int, float),
            "retry_after": (int, float),
            "delay": (int, float),
            "size": (int,),
        }
        for key, value in data.items():
            if key not in allowed:
                raise ValueError(f"unknown fault field {key!r}")
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, allowed[key])
            ):
                raise ValueError(f"fault field {key!r} has the wrong type")
        if "kind" not in data:
            raise ValueError("a fault needs a 'kind'")
        return cls(**data)


class FaultRules:
    """The rules added with `add`, tried in order, then random faults at `rate`
    (and, for batch lines, "line-error" at `line_error_rate`).

    Not thread-safe: its owner calls it under its own lock.
    """

    def __init__(
        self,
        *,
        rate: float,
        mix: Sequence[str],
        seed: int,
        line_error_rate: float = 0.0,
    ) -> None:
        for kind in mix:
            Fault(kind)  # validates the name
            if kind in BATCH_FAULT_KINDS:
                raise ValueError(f"{kind} is a batch fault; it cannot be in fault_mix")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if not 0.0 <= line_error_rate <= 1.0:
            raise ValueError("line_error_rate must be between 0 and 1")
        self.rate = rate
        self.line_error_rate = line_error_rate
        self.mix: tuple[str, ...] = tuple(mix) or DEFAULT_FAULT_MIX
        self._seed = seed
        self._rules: list[_Rule] = []
        self._rng = random.Random(seed)
        self._directives: dict[str, int] = {}  # batches created per directive

    def __len__(self) -> int:
        return len(self._rules)

    def add(self, fault: Fault) -> None:
        """Append a rule; the first rule that fires wins."""
        self._rules.append(_Rule(fault))

    def reset(self) -> None:
        """Drop every rule and reseed the random faults."""
        self._rules.clear()
        self._directives.clear()
        self._rng.seed(self._seed)

    def pick(self, text: str, *, line: bool = False) -> Fault | None:
        """The fault for a request with this prompt text (a batch line if `line`),
        None for a normal answer."""
        for rule in self._rules:
            kind = rule.fault.kind
            if kind in BATCH_LEVEL_KINDS or (kind == "line-error" and not line):
                continue
            if self._fires(rule, text):
                return rule.fault
        if self.rate > 0 and self._rng.random() < self.rate:
            return Fault(self._rng.choice(self.mix))
        if line and self.line_error_rate > 0:
            if self._rng.random() < self.line_error_rate:
                return Fault("line-error")
        return None

    def pick_batch(self, display_name: str, texts: Sequence[str]) -> str | None:
        """The batch-level fault kind for a batch created with this displayName
        whose input holds these texts: a rule matching the displayName, else the
        first `[sim:batch-...]` directive in the texts (`*N`: the first N batches
        created with it)."""
        for rule in self._rules:
            if rule.fault.kind in BATCH_LEVEL_KINDS and self._fires(rule, display_name):
                return rule.fault.kind
        for text in texts:
            for match in DIRECTIVE.finditer(text):
                if match.group("kind") not in BATCH_LEVEL_KINDS:
                    continue
                seen = self._directives.get(match.group(0), 0) + 1
                self._directives[match.group(0)] = seen
                times = match.group("times")
                if times is None or seen <= int(times):
                    return match.group("kind")
        return None

    def pick_file_delete(self, display_name: str) -> bool:
        """Whether deleting a file with this displayName fails ("file-delete-error"
        rules only: a file holds no prompt to carry a directive)."""
        return any(
            rule.fault.kind == "file-delete-error" and self._fires(rule, display_name)
            for rule in self._rules
        )

    def _fires(self, rule: _Rule, text: str) -> bool:
        fault = rule.fault
        if fault.match is not None and fault.match not in text:
            return False
        if fault.times is not None and rule.fired >= fault.times:
            return False
        if fault.rate < 1.0 and self._rng.random() >= fault.rate:
            return False
        rule.fired += 1
        return True


def parse_rules(raw: bytes) -> list[Fault]:
    """Rules from a JSON object or list of objects; ValueError or TypeError if bad."""
    payload = json.loads(raw)
    items = payload if isinstance(payload, list) else [payload]
    return [Fault.from_dict(_as_mapping(item)) for item in items]


def directive_fault(directive: re.Match[str], received: int) -> Fault | str | None:
    """The fault a DIRECTIVE match asks for on the `received`-th request of its body:
    None past its `*N`, or the 400 message for a malformed directive."""
    try:
        fault = _directive_fault(directive)
    except ValueError as exc:
        return f"[sim:...] directive: {exc}"
    limit = directive.group("times")
    if limit is not None and received > int(limit):
        return None
    return fault


async def answer(
    gen: Generate,
    target: Target,
    fault: Fault | None,
    *,
    render: Callable[[Generate], Awaitable[bytes]],
    publish: Callable[[bytes | None], str],
) -> Answer:
    """The answer of `target` to `gen` under `fault` (None: a normal image answer).

    `render` draws a PNG; `publish` serves a PNG once and returns its URL (for None,
    a URL that answers 404).
    """
    kind = fault.kind if fault is not None else "ok"
    error = _error_reply(kind, fault, target.model, target.version)
    if error is not None:
        return error
    if kind in ("hang", "drop"):
        return Answer(0, b"", mode=kind)
    base: dict[str, Any] = {"modelVersion": target.model, "responseId": response_id()}
    if kind in NO_IMAGE_KINDS:
        body = no_image_body(kind, gen, target.image_tokens)
        return json_reply(200, {**body, **base})
    text = "Here is your image." if "TEXT" in gen.modalities else None
    relayed = kind in ("relay-markdown", "relay-url", "relay-inline-dead-url")
    metadata = usage(
        gen,
        target.spec,
        image_tokens=target.image_tokens,
        text=text,
        thoughts=target.thoughts_tokens,
        images=1 if relayed else target.images_per_answer,  # a relay links one
    )
    png = await render(gen)
    b64 = base64.b64encode(png).decode("ascii")
    inline: dict[str, Any] = {"mimeType": "image/png", "data": b64}
    if relayed:
        if kind == "relay-markdown":
            link = f"data:image/png;base64,{b64}"
        elif kind == "relay-url":
            link = publish(png)
        else:
            link = publish(None)
        parts: list[dict[str, Any]] = [{"text": f"![image]({link})"}]
        if kind == "relay-inline-dead-url":
            parts.append({"inlineData": inline})
        return json_reply(200, success_body(parts, metadata, base), images=1)
    if kind == "bad-base64":
        inline["data"] = BAD_BASE64
    elif kind == "no-mime":
        del inline["mimeType"]
    elif kind == "wrong-mime":
        inline["mimeType"] = "image/jpeg"
    parts = [
        {"text": f"Planning the composition for: {gen.text[:60]}", "thought": True}
    ]
    # Gemini 3 image models: up to two interim images, then signatures on the final
    # parts (api-samples/200-thought-images-and-signatures.json; Google's image
    # generation page, "Thinking process" and "Thought signatures").
    thinking = gen.include_thoughts and target.spec.thinks
    if thinking:
        for _ in range(target.thought_images):
            interim = base64.b64encode(await render(gen)).decode("ascii")
            parts.append(
                {
                    "inlineData": {"mimeType": "image/png", "data": interim},
                    "thought": True,
                }
            )
    final: list[dict[str, Any]] = [{"text": text}] if text else []
    final.append({"inlineData": inline})
    # More than one final image in an answer (each billed as output): the same
    # picture again, as a dict of its own so each part gets its own signature.
    final += [{"inlineData": dict(inline)} for _ in range(target.images_per_answer - 1)]
    if thinking:
        for part in final:
            part["thoughtSignature"] = thought_signature()
    parts += final
    grounding = grounding_metadata(gen.text, text) if gen.grounded else None
    body = success_body(parts, metadata, base, grounding)
    images = 0 if kind == "bad-base64" else target.images_per_answer
    if kind == "huge":
        wanted = fault.size if fault and fault.size is not None else DEFAULT_HUGE_SIZE
        size = len(dumps(body))
        pad = max(0, wanted - size - len(',{"text":""}'))
        parts.insert(1, {"text": "x" * pad})
    reply = json_reply(200, body, images=images)
    reply.signatures = tuple(
        p["thoughtSignature"] for p in final if "thoughtSignature" in p
    )
    if kind == "truncated":
        reply.body = reply.body[: len(reply.body) // 2]
        reply.usage = None
        reply.images = 0
    elif kind == "drop-mid-body":
        reply.mode = "half"
    return reply


# -- private helpers --------------------------------------------------------------


@dataclass(slots=True)
class _Rule:
    fault: Fault
    fired: int = 0


_RELAY_403_BALANCE = {
    "error": {
        "message": "user quota is not enough",
        "type": "new_api_error",
        "param": "",
        "code": "insufficient_user_quota",
    }
}
_RELAY_502 = {
    "error": {
        "message": "bad response status code 502",
        "type": "upstream_error",
        "param": "",
        "code": "bad_response_status_code",
    }
}
# A key whose project may not call the method (continuedev/continue#12781).
_BLOCKED = (
    "Requests to this API generativelanguage.googleapis.com method "
    "google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent are "
    "blocked."
)
_PERMISSION_DENIED = google_error(
    403,
    _BLOCKED,
    "PERMISSION_DENIED",
    [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_SERVICE_BLOCKED",
            "domain": "googleapis.com",
            "metadata": {
                "consumer": "projects/000000000000",
                "service": "generativelanguage.googleapis.com",
                "apiName": "generativelanguage.googleapis.com",
                "methodName": "google.ai.generativelanguage.v1beta."
                "GenerativeService.GenerateContent",
            },
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": _BLOCKED,
        },
    ],
)
# google-gemini/gemini-cli#1614 (api-samples/400-google-location-not-supported.json)
_LOCATION = google_error(
    400, "User location is not supported for the API use.", "FAILED_PRECONDITION"
)
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"


def _quota_limit_zero(model: str, retry_after: float) -> dict[str, Any]:
    """The free tier's 429 for an image model: no quota at all (quotaValue "0"),
    as in google/langextract#50 and gemini-cli#8437."""
    # The samples name the model without "-preview"; unconfirmed for every model.
    quota_model = model.removesuffix("-preview")
    periods = ("PerDay", "PerMinute")
    exceeded = "".join(
        f"\n* Quota exceeded for metric: {_QUOTA_METRIC}, limit: 0, "
        f"model: {quota_model}"
        for _ in periods
    )
    message = (
        "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits." + exceeded
    )
    help_links = {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [
            {
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }
        ],
    }
    quota = {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": _QUOTA_METRIC,
                "quotaId": f"GenerateRequests{period}PerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": quota_model},
                "quotaValue": "0",
            }
            for period in periods
        ],
    }
    details = [help_links, quota, retry_info(retry_after)]
    return google_error(429, message, "RESOURCE_EXHAUSTED", details)


_FIXED_ERRORS: Mapping[str, tuple[int, dict[str, Any]]] = {
    "500": (
        500,
        google_error(
            500,
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
            "INTERNAL",
        ),
    ),
    "502-relay": (502, _RELAY_502),
    "504": (
        504,
        google_error(
            504,
            "Deadline expired before operation could complete.",
            "DEADLINE_EXCEEDED",
        ),
    ),
    "408": (408, google_error(408, "Request timed out.", "DEADLINE_EXCEEDED")),
    "401": (401, RELAY_401),
    "403": (
        403,
        google_error(
            403,
            "Method doesn't allow unregistered callers (callers without "
            "established identity). Please use API Key or other form of API "
            "consumer identity to call this API.",
            "PERMISSION_DENIED",
        ),
    ),
    "403-balance": (403, _RELAY_403_BALANCE),
    "key-invalid": (400, KEY_INVALID),
    "permission-denied": (403, _PERMISSION_DENIED),
    "location": (400, _LOCATION),
    "400": (
        400,
        google_error(
            400,
            'Invalid JSON payload received. Unknown name "aspect" at '
            "'generation_config.image_config': Cannot find field.",
            "INVALID_ARGUMENT",
        ),
    ),
}


def _error_reply(
    kind: str, fault: Fault | None, model: str, version: str
) -> Answer | None:
    retry_after = fault.retry_after if fault is not None else None
    if kind == "model-not-found":
        return json_reply(404, model_not_found(model, version))
    if kind == "429-limit-0":
        delay = retry_after if retry_after is not None else DEFAULT_RETRY_DELAY
        return json_reply(429, _quota_limit_zero(model, delay))
    if kind in ("429", "429-day"):
        period = "PerDay" if kind == "429-day" else "PerMinute"
        quota = {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests",
                    "quotaId": f"GenerateRequests{period}PerProjectPerModel-FreeTier",
                }
            ],
        }
        delay = retry_after if retry_after is not None else DEFAULT_RETRY_DELAY
        message = (
            "You exceeded your current quota, please check your plan and billing "
            "details."
        )
        body = google_error(
            429, message, "RESOURCE_EXHAUSTED", [quota, retry_info(delay)]
        )
        return json_reply(429, body)
    if kind == "503":
        message = "The model is overloaded. Please try again later."
        if retry_after is None:
            return json_reply(503, google_error(503, message, "UNAVAILABLE"))
        body = google_error(503, message, "UNAVAILABLE", [retry_info(retry_after)])
        return json_reply(503, body, headers=(("Retry-After", f"{retry_after:g}"),))
    if kind in _FIXED_ERRORS:
        status, fixed = _FIXED_ERRORS[kind]
        return json_reply(status, fixed)
    if kind == "non-json":
        return Answer(200, NON_JSON_BODY, content_type="text/html; charset=utf-8")
    return None


def _directive_fault(match: re.Match[str]) -> Fault:
    params: dict[str, float] = {}
    for item in match.group("params").split():
        name, _, value = item.partition("=")
        if name not in ("retry_after", "delay", "size"):
            raise ValueError(f"unknown parameter {name!r}")
        params[name] = float(value)
    size = params.get("size")
    return Fault(
        match.group("kind"),
        retry_after=params.get("retry_after"),
        delay=params.get("delay"),
        size=int(size) if size is not None else None,
    )


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("a fault rule must be a JSON object")
    return value
