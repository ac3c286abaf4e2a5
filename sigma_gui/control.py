"""Sending commands to a trainer: in this process directly, in another through an authenticated local channel.

The control channel
-------------------
A run that wants to be driven from another process adds the
:class:`ControlChannel` hook (``sigma_gui.attach_remote(trainer)`` adds it
with the event-log feed). When the run starts, the hook listens on
``127.0.0.1`` on a free port and writes ``control.json`` into the run
directory, readable by its owner only (mode 0600)::

    {"host": "127.0.0.1", "port": 40123, "token": "<64 hex digits>", "pid": 4242, "protocol": 1}

A client connects, sends one line of JSON and reads one line back::

    -> {"token": "...", "command": "set_lr", "arguments": {"value": 0.01}}
    <- {"ok": true, "iteration": 1200, "epoch": 2, "paused": false}
    <- {"ok": false, "error": "unknown trainer command 'jump'; known commands: [...]"}

The token is new for every run and compared in constant time; only a user
who can read the run directory's ``control.json`` can drive the run. Any
command ``trainer.send`` knows is accepted (``pause``, ``resume``, ``stop``,
``step``, ``set_lr``, ``set_hyperparameter``, ``checkpoint``, and the
GUI's ``restore_checkpoint``), plus ``status``, which only answers. The
trainer applies commands between steps and records them in the event
log. When the run ends, ``control.json`` is removed.

Example:
    >>> from sigma_gui.control import ControlChannel
    >>> ControlChannel().name
    'control_channel'
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import pathlib
import secrets
import socket
import socketserver
import threading
from typing import Any, Dict, Optional

from sigma.training.condition import Never
from sigma.training.hooks.base import Hook

CONTROL_FILE = "control.json"
PROTOCOL = 1
MAX_REQUEST_BYTES = 65536
logger = logging.getLogger("sigma.gui")


class ControlError(RuntimeError):
    """A command could not be delivered, or the trainer refused it."""


def _status(trainer) -> Dict[str, Any]:
    return {"iteration": trainer.position.iteration, "epoch": trainer.position.epoch, "paused": trainer.paused,
            "running": trainer.running}


def _write_private(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable and writable by the owner only."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, text.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


class _RequestHandler(socketserver.StreamRequestHandler):
    timeout = 5.0

    def handle(self) -> None:
        channel: "ControlChannel" = self.server.channel
        try:
            line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
            reply = channel.answer(line)
        except (OSError, socket.timeout) as error:
            reply = {"ok": False, "error": f"could not read the request: {error}"}
        try:
            self.wfile.write((json.dumps(reply) + "\n").encode("utf-8"))
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = False


class ControlChannel(Hook):
    """Serves trainer commands on 127.0.0.1 for the length of each ``trainer.run`` (see the module docs)."""

    def __init__(self, name: Optional[str] = None):
        super().__init__(Never(), name=name or "control_channel")
        self.token: Optional[str] = None
        self.port: Optional[int] = None
        self.path: Optional[pathlib.Path] = None
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._trainer = None

    def setup(self, trainer) -> None:
        if trainer.run_directory is None:
            raise ValueError("ControlChannel: the trainer needs a run directory (Trainer(run_directory=...)) to "
                             "publish the channel's port and token in")
        self._trainer = trainer
        self.token = secrets.token_hex(32)
        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.channel = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sigma-control-channel", daemon=True)
        self._thread.start()
        self.path = trainer.run_directory.path / CONTROL_FILE
        _write_private(self.path, json.dumps({"host": "127.0.0.1", "port": self.port, "token": self.token,
                                              "pid": os.getpid(), "protocol": PROTOCOL}) + "\n")

    def __call__(self, trainer) -> None:
        pass  # everything happens in the server thread

    def teardown(self, trainer) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.path is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self._trainer = None

    def answer(self, line: bytes) -> Dict[str, Any]:
        """The reply to one request line (called in the server's threads)."""
        if len(line) > MAX_REQUEST_BYTES:
            return {"ok": False, "error": f"request longer than {MAX_REQUEST_BYTES} bytes"}
        try:
            request = json.loads(line)
        except ValueError as error:
            return {"ok": False, "error": f"the request is not JSON: {error}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "the request must be a JSON object"}
        token = request.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), (self.token or "").encode()):
            logger.warning("control channel: a request with a wrong token was refused")
            return {"ok": False, "error": "wrong token: read it from the run directory's control.json"}
        trainer = self._trainer
        if trainer is None:
            return {"ok": False, "error": "the run has ended"}
        command, arguments = request.get("command"), request.get("arguments") or {}
        if not isinstance(command, str) or not isinstance(arguments, dict):
            return {"ok": False, "error": "a request needs 'command' (a string) and 'arguments' (an object)"}
        if command != "status":
            try:
                trainer.send(command, **arguments)
            except (KeyError, TypeError, ValueError) as error:
                return {"ok": False, "error": str(error).strip("'\"")}
        return {"ok": True, **_status(trainer)}


class InProcessControl:
    """Commands to a trainer in this process, through its thread-safe command queue."""

    remote = False

    def __init__(self, trainer):
        self.trainer = trainer

    def send(self, command: str, /, **arguments: Any) -> Dict[str, Any]:
        try:
            self.trainer.send(command, **arguments)
        except KeyError as error:
            raise ControlError(str(error).strip("'\"")) from None
        return {"ok": True, **_status(self.trainer)}

    def describe(self) -> str:
        return "in this process"


class RemoteControl:
    """Commands to a trainer in another process, through the control channel of its run directory."""

    remote = True

    def __init__(self, run_path: "str | os.PathLike", timeout: float = 5.0):
        self.path = pathlib.Path(run_path) / CONTROL_FILE
        self.timeout = timeout

    @property
    def available(self) -> bool:
        """Whether the run publishes a control channel now (it does while it trains)."""
        return self.path.is_file()

    def _details(self) -> Dict[str, Any]:
        try:
            details = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ControlError(f"{self.path.parent} has no {CONTROL_FILE}: the run is not training now, or it was "
                               "started without sigma_gui.attach_remote(trainer)") from None
        except PermissionError:
            raise ControlError(f"{self.path} is not readable by this user: only the run's owner may drive it") \
                from None
        except ValueError as error:
            raise ControlError(f"{self.path} is damaged: {error}") from None
        if not isinstance(details, dict) or not {"port", "token"} <= set(details):
            raise ControlError(f"{self.path} lacks 'port' or 'token'")
        if details.get("protocol", PROTOCOL) > PROTOCOL:
            raise ControlError(f"{self.path} uses control protocol {details['protocol']}; this GUI speaks "
                               f"{PROTOCOL}")
        return details

    def send(self, command: str, /, **arguments: Any) -> Dict[str, Any]:
        details = self._details()
        request = json.dumps({"token": details["token"], "command": command, "arguments": arguments}) + "\n"
        try:
            with socket.create_connection(("127.0.0.1", int(details["port"])), timeout=self.timeout) as connection:
                connection.sendall(request.encode("utf-8"))
                reply_text = connection.makefile("rb").readline(MAX_REQUEST_BYTES)
        except OSError as error:
            raise ControlError(f"cannot reach the run's control channel on 127.0.0.1:{details['port']}: "
                               f"{error}") from None
        try:
            reply = json.loads(reply_text)
        except ValueError:
            raise ControlError(f"the control channel answered {reply_text[:80]!r}, not JSON") from None
        if not reply.get("ok"):
            raise ControlError(f"the run refused {command}: {reply.get('error')}")
        return reply

    def describe(self) -> str:
        return f"control channel of {self.path.parent}"


__all__ = ["ControlChannel", "ControlError", "InProcessControl", "RemoteControl", "CONTROL_FILE"]
