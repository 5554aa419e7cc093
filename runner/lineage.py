"""Parent images of a derived job (SPEC section 6), as planning takes them.

Owns: `Turn` (an earlier turn of a conversation, each image part naming its bytes
by an index into the turn's files) and `Parent` (one parent image, with what its
item asked and what the model answered), and the conversation a `continue` sends
back before its own turn. Pure values: must not read files or the store (the runs
layer finds the parents and reads their images).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from runner.spec import Reference

if TYPE_CHECKING:
    from collections.abc import Mapping

# In a Turn's image part (`inlineData` or `inline_data`), the index in Turn.files
# of the image whose base64 bytes take its place when the request is built.
FILE = "file"


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier turn of a conversation, sent back verbatim before a new one."""

    role: str  # "user" or "model"
    parts: tuple[Mapping[str, Any], ...]  # as sent, images naming `files` by FILE
    files: tuple[Reference, ...] = ()

    @classmethod
    def user(cls, text: str, references: tuple[Reference, ...]) -> Turn:
        """A user turn as the runner sends one: the text, then each image."""
        images = (
            {"inline_data": {"mime_type": ref.mime_type, FILE: i}}
            for i, ref in enumerate(references)
        )
        return cls("user", ({"text": text}, *images), references)

    def canonical(self) -> dict[str, Any]:
        """What an item key hashes of it: images by content hash, not path."""
        return {
            "role": self.role,
            "parts": [dict(p) for p in self.parts],
            "files": [[f.sha256, f.mime_type] for f in self.files],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "parts": [dict(p) for p in self.parts],
            "files": [f.to_dict() for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Turn:
        return cls(
            role=data["role"],
            parts=tuple(data["parts"]),
            files=tuple(Reference.from_dict(f) for f in data["files"]),
        )


@dataclass(frozen=True, slots=True)
class Parent:
    """One parent image and the item that made it."""

    job: str
    key: str  # the parent item's key
    image: str  # relative to the parent job's folder, e.g. images/p1_..._3fa9c2d1.png
    file: Reference  # the image itself, read and hashed when planning
    aspect_ratio: str  # the parent item's, as its job file wrote it ("auto" too)
    prompt_id: str
    vars: Mapping[str, str]
    ref_label: str
    text: str  # the prompt the parent was made from
    references: tuple[Reference, ...]  # and the images sent with it
    history: tuple[Turn, ...] = ()  # turns the parent's own request sent first
    answer: Turn | None = None  # the model's turn; None: not read (or not recorded)
    model: str = ""  # the model the parent's request named

    @property
    def name(self) -> str:
        """The image's file name: how `plan` and explicit lists name a parent."""
        return PurePosixPath(self.image).name

    def conversation(self) -> tuple[Turn, ...]:
        """The turns a `continue` sends before its own: the parent's earlier turns,
        its own request, and the model's answer."""
        if self.answer is None:
            raise ValueError(f"the answer of parent {self.image} was not read")
        return (*self.history, Turn.user(self.text, self.references), self.answer)

    def identity(self) -> list[Any]:
        """What makes two resolutions of this parent plan alike (plan digests)."""
        turns = self.conversation() if self.answer is not None else ()
        return [
            self.job,
            self.key,
            self.image,
            self.file.sha256,
            self.aspect_ratio,
            [turn.canonical() for turn in turns],
        ]
