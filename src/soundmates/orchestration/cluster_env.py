"""The cluster layout's Airflow settings file (configs/airflow-cluster.env), as compose and run_cluster.sh read it.

The file holds the settings with docker-compose's service names in its URLs; on one machine
``localize`` swaps those names for the loopback address and port where each service really
listens, and ``python -m soundmates.orchestration.cluster_env FILE --host postgres=127.0.0.1:5433``
prints the result as ``export`` lines for a shell to ``eval``. ``hostname`` is the
``[core] hostname_callable`` the file names: it tells apart two workers on one machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def parse_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines (compose's env-file syntax without interpolation): comments and blank lines skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ValueError(f"{path}:{number}: not a KEY=VALUE line: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def localize(values: dict[str, str], hosts: dict[str, str]) -> dict[str, str]:
    """Each URL whose host is a key of ``hosts`` (a compose service name) points at ``hosts[name]`` (host:port) instead."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if "://" in value:
            parts = urlsplit(value)
            if parts.hostname in hosts:
                userinfo = parts.netloc.rpartition("@")[0]
                netloc = f"{userinfo}@{hosts[parts.hostname]}" if userinfo else hosts[parts.hostname]
                value = urlunsplit(parts._replace(netloc=netloc))
        out[key] = value
    return out


def hostname() -> str:
    """``$SOUNDMATES_HOSTNAME`` when set (each worker of the one-machine cluster sets its own), else the FQDN."""
    return os.environ.get("SOUNDMATES_HOSTNAME") or socket.getfqdn()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_file", type=Path)
    parser.add_argument("--host", action="append", default=[], metavar="SERVICE=HOST:PORT")
    args = parser.parse_args(argv)
    hosts = dict(spec.split("=", 1) for spec in args.host)
    for key, value in localize(parse_env_file(args.env_file), hosts).items():
        sys.stdout.write(f"export {key}={shlex.quote(value)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
