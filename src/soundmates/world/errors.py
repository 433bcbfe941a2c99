"""Spotify's error bodies for the local server, and the request-parameter checks that raise them."""

from __future__ import annotations

from typing import Any

from soundmates.world.ids import is_base62_id

MAX_IDS = 50  # the most ids one /artists?ids= or /tracks?ids= call takes


class ApiError(Exception):
    """An answer other than 200: ``status``, Spotify's ``{"error": {...}}`` body, extra headers."""

    def __init__(self, status: int, message: str | None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        err: dict[str, Any] = {"status": self.status}
        if self.message is not None:
            err["message"] = self.message
        return {"error": err}


def int_param(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``[low, high]`` (``default`` when absent), else 400."""
    values = query.get(name)
    if not values:
        return default
    raw = values[-1].strip()
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid {name}") from None
    if not low <= v <= high:
        raise ApiError(400, f"Invalid {name}")
    return v


def ids_param(query: dict[str, list[str]]) -> list[str]:
    """The ``ids`` parameter of a batch call: 1 to 50 base62 ids, else 400 as Spotify words it."""
    given = query.get("ids")
    if not given:
        raise ApiError(400, "Missing required parameter: ids")
    raw = given[-1]
    ids = [s.strip() for s in raw.split(",")]
    if not raw.strip() or any(not s for s in ids):
        raise ApiError(400, "invalid id")
    if len(ids) > MAX_IDS:
        raise ApiError(400, "Too many ids requested")
    if any(not is_base62_id(s) for s in ids):
        raise ApiError(400, "invalid id")
    return ids
