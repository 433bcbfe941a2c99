"""What the local ``/authorize`` shows and where it sends the browser: login/consent page, redirects, redirect-URI rules.

Pure functions of the request's values (no OAuth state): :mod:`soundmates.world.oauth` decides,
these render.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode, urlsplit

from soundmates.world.directory import World
from soundmates.world.request import HTML_TYPE, Response


def valid_redirect(uri: str, registered: list[str] | None) -> bool:
    """Whether the app may be sent back to ``uri``: one of ``registered``, else https or http on a loopback literal."""
    if registered is not None:
        return uri in registered
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        _ = parts.port  # a malformed port raises
    except ValueError:
        return False
    if parts.fragment or not host:
        return False
    if parts.scheme == "https":
        return host != "localhost"
    # Since April 2025 Spotify accepts plain http only for loopback literals, never "localhost".
    return parts.scheme == "http" and host in ("127.0.0.1", "::1")


def with_query(uri: str, params: dict[str, str]) -> str:
    sep = "&" if urlsplit(uri).query else "?"
    return uri + sep + urlencode(params)


def html_page(status: int, title: str, body: str) -> Response:
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()
    return Response(status, doc, HTML_TYPE, (("Cache-Control", "no-store"),))


def redirect(location: str) -> Response:
    return Response(302, b"", None, (("Location", location), ("Cache-Control", "no-store")))


def login_page(q: dict[str, str], shown: list[str], world: World) -> Response:
    """The login/consent page: the scopes asked for, the users ``shown`` to log in as, a cancel link."""
    base = {k: v for k, v in q.items() if k not in ("login_as", "deny")}
    rows = []
    for uid in shown:
        spec = world.user(world.user_index(uid))
        name = html.escape(spec.display_name or uid)
        href = html.escape("/authorize?" + urlencode({**base, "login_as": uid}))
        rows.append(
            f"<li><a class='login' data-user-id='{html.escape(uid)}' href='{href}'>{name}</a> "
            f"<small>{html.escape(uid)}</small></li>"
        )
    hidden = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>" for k, v in base.items())
    deny = html.escape("/authorize?" + urlencode({**base, "deny": "1"}))
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in sorted(set(q.get("scope", "").replace(",", " ").split())))
    body = (
        f"<p>An app (client id <code>{html.escape(q.get('client_id', ''))}</code>) asks to read:</p><ul>{scopes}</ul>"
        f"<p>Log in as:</p><ul id='users'>{''.join(rows)}</ul>"
        f"<form method='get' action='/authorize'>{hidden}<input name='login_as' id='login-as' placeholder='user id'>"
        f"<button type='submit' id='login-submit'>Log in</button></form>"
        f"<p><a id='deny' href='{deny}'>Cancel</a></p>"
    )
    return html_page(200, "Log in to the local Spotify", body)
