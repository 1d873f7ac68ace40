"""Telemetry probe: Python imports this at start-up in every process of a telemetry test (the
test puts this folder on ``PYTHONPATH`` and names a folder in ``MINDKD_PROBE_DIR``).

It appends JSON lines to ``$MINDKD_PROBE_DIR/<pid>.jsonl``, as things happen (a child process that
is killed still leaves what it saw):

- ``{"start": argv}``: the process started under the probe.
- ``{"net": ...}``: every attempt to reach another machine (a name look-up or a connect to an
  address that is not loopback). The attempt is refused with ``OSError``, so nothing is sent and
  nothing waits on a network timeout; loopback and unix sockets are allowed.
- ``{"thread": name}``: every thread started (``threading.Thread.start`` is wrapped: Python 3.11
  has no audit event for it).
- ``{"exit": {...}}``: at interpreter exit, the telemetry state of what the process imported:
  MLflow's own ``is_telemetry_disabled()`` and whether its telemetry client exists, kedro-telemetry's
  consent (its own resolution from the environment, and its hook's) and whether it sent.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import threading
from typing import Any

_DIR = os.environ.get("MINDKD_PROBE_DIR")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
_LOOKUPS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"}
_CONNECTS = {"socket.connect", "socket.sendto", "socket.sendmsg"}


def _write(record: dict[str, Any]) -> None:
    with open(os.path.join(_DIR, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as out:
        out.write(json.dumps(record, default=repr) + "\n")


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    return host in _LOOPBACK or (isinstance(host, str) and host.startswith("127."))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in _LOOKUPS:
        host = args[0]
    elif event in _CONNECTS:
        address = args[1]  # (socket, address)
        if not isinstance(address, tuple):  # a unix socket path
            return
        host = address[0]
    else:
        return
    if _is_loopback(host):
        return
    _write({"net": f"{event} {host!r}"})
    raise socket.gaierror(socket.EAI_NONAME, f"telemetry probe: no network ({event} {host!r})")


_start = threading.Thread.start


def _recording_start(self: threading.Thread) -> None:
    _write({"thread": self.name})
    _start(self)


def _state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "argv": sys.argv,
        "mindkd_imported": "mindkd" in sys.modules,
        "env": {
            name: os.environ.get(name)
            for name in ("MLFLOW_DISABLE_TELEMETRY", "KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK")
        },
    }
    if "mlflow.telemetry.client" in sys.modules:
        from mlflow.telemetry import get_telemetry_client
        from mlflow.telemetry.utils import is_telemetry_disabled

        state["mlflow_disabled"] = is_telemetry_disabled()
        state["mlflow_client"] = get_telemetry_client() is not None
    if "kedro_telemetry.plugin" in sys.modules:
        plugin = sys.modules["kedro_telemetry.plugin"]
        state["kedro_consent_from_env"] = plugin._check_for_telemetry_consent(None)
        state["kedro_hook_consent"] = plugin.telemetry_hook._consent
        state["kedro_hook_sent"] = plugin.telemetry_hook._sent
    return state


if _DIR:
    _write({"start": sys.argv})
    sys.addaudithook(_audit)
    threading.Thread.start = _recording_start  # type: ignore[method-assign]
    atexit.register(lambda: _write({"exit": _state()}))
