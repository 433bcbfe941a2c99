"""A stand-in Airflow 3 API server on loopback: the simple auth manager's login, health, DAGs and DAG runs.

It answers the endpoints ``soundmates.orchestration.airflow_api`` calls, over real HTTP, and records
every request (method, path, query, headers, JSON body) so a test can check what the client sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.helpers.dashboard import RUNS

TOKEN = "tok-123"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class AirflowDouble:
    """Airflow at ``url`` while started; ``password`` is admin's; ``runs_body`` what the DAG-runs list answers."""

    password: str = "s3cret"
    runs_body: Any = field(default_factory=lambda: RUNS)
    run_states: list[str] = field(default_factory=lambda: ["running", "success"])
    fail_next: int = 0  # answer this many requests with a 503 first
    seen: list[Seen] = field(default_factory=list)
    paused: dict[str, bool] = field(default_factory=dict)
    triggered: list[dict] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AirflowDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                double.seen.append(Seen(method, parts.path, query, dict(self.headers), body))
                status, answer = double.answer(method, parts.path, self.headers.get("Authorization"), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

            def do_PATCH(self):
                self._answer("PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, Any]:
        if self.fail_next > 0:
            self.fail_next -= 1
            return 503, {"detail": "busy"}
        if path == "/api/v2/monitor/health":
            return 200, {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}
        if path == "/auth/token":
            if body == {"username": "admin", "password": self.password}:
                return 201, {"access_token": TOKEN}
            return 401, {"detail": "Invalid credentials"}
        if auth != f"Bearer {TOKEN}":
            return 401, {"detail": "Not authenticated"}
        return self._api(method, path, body)

    def _api(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.removeprefix("/api/v2/dags/").split("/")
        if path == "/api/v2/dags/~/dagRuns":
            return 200, self.runs_body
        dag_id = parts[0]
        if len(parts) == 1:
            if method == "PATCH":
                self.paused[dag_id] = bool(body["is_paused"])
            return 200, {"dag_id": dag_id, "is_paused": self.paused.get(dag_id, True)}
        if parts[1:] == ["dagRuns"] and method == "POST":
            self.triggered.append({"dag_id": dag_id, **body})
            return 200, {"dag_run_id": f"manual__{len(self.triggered)}", "state": "queued"}
        if len(parts) == 3:
            state = self.run_states.pop(0) if len(self.run_states) > 1 else self.run_states[0]
            return 200, {"dag_run_id": parts[2], "state": state}
        if parts[3:] == ["taskInstances"]:
            return 200, {"task_instances": [{"task_id": "ingest", "map_index": -1, "state": "success"}]}
        return 404, {"detail": "not found"}
