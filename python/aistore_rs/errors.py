"""Typed exceptions carrying the server's message (AIStore's JSON error shape)."""

from __future__ import annotations

import json
import re


class AISError(Exception):
    """Any error answered by the cluster."""

    def __init__(self, status: int, message: str, tcode: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.tcode = tcode

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})"


class BucketNotFound(AISError):
    pass


class BucketExists(AISError):
    pass


class ObjectNotFound(AISError):
    pass


class ETLNotFound(AISError):
    pass


class ETLExists(AISError):
    pass


class ETLError(AISError):
    """The transform failed; ``traceback`` holds the tail of the Python traceback."""

    @property
    def traceback(self) -> str:
        lines = self.message.split("\n", 1)
        return lines[1] if len(lines) > 1 else ""


_OBJ = re.compile(r"[a-z]+://[A-Za-z0-9@#._-]+/")


def from_response(status: int, body: str, hdr_error: str | None = None) -> AISError:
    raw = hdr_error or body
    msg, tcode = raw, ""
    try:
        d = json.loads(raw)
        msg, tcode = d.get("message", raw), d.get("tcode", "")
    except (ValueError, AttributeError):
        pass
    if not msg:
        msg = f"HTTP {status}"
    if "etl job" in msg and status == 404:
        return ETLNotFound(status, msg, tcode)
    if "etl job" in msg and status == 409:
        return ETLExists(status, msg, tcode)
    if tcode == "ErrETL" or status == 422:
        return ETLError(status, msg, tcode)
    if status == 404 and tcode == "ErrBckNotFound":
        return BucketNotFound(status, msg, tcode)
    if status == 404 and (tcode == "ErrNotFound" or _OBJ.search(msg)):
        return ObjectNotFound(status, msg, tcode)
    if status == 404 and "bucket" in msg:
        return BucketNotFound(status, msg, tcode)
    if status == 409 and "bucket" in msg:
        return BucketExists(status, msg, tcode)
    return AISError(status, msg, tcode)
