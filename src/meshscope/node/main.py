"""The node loop: read a message, dispatch it, write the reply. It never dies on input."""

from __future__ import annotations

from typing import TextIO

from meshscope.clock import SystemClock
from meshscope.node.fields import BadFieldError
from meshscope.node.framing import Garbage, JsonObject, Output, read_values
from meshscope.node.handlers import HANDLERS, Envelope, NodeState
from meshscope.pipeline.chain import Pipeline
from meshscope.store.memory import MemoryStorage

ERROR_NOT_SUPPORTED = 10
ERROR_MALFORMED = 12
ERROR_CRASH = 13
DEFAULT_SRC = "client"
DEFAULT_DEST = "meshscope"


class Node:
    def __init__(self, output: Output) -> None:
        self.output = output
        self.state = NodeState(Pipeline(MemoryStorage(), SystemClock()))
        self.last = Envelope(DEFAULT_SRC, DEFAULT_DEST)

    def receive(self, value: JsonObject) -> None:
        envelope, body = self._split(value)
        if body is None:
            self.output.warn(
                f"ignored a JSON object with neither 'body' nor 'type': {value!r:.200}"
            )
            return
        msg_id = body.get("msg_id")
        msg_type = body.get("type")
        handler = HANDLERS.get(msg_type) if isinstance(msg_type, str) else None
        if handler is None:
            self._fail(envelope, msg_id, ERROR_NOT_SUPPORTED, f"unknown message type {msg_type!r}")
            return
        try:
            reply = handler(self.state, body, envelope)
        except BadFieldError as error:
            self._fail(envelope, msg_id, ERROR_MALFORMED, f"{msg_type}: {error}")
            return
        if reply is not None:
            self._send(envelope, msg_id, reply)

    def crashed(self, value: JsonObject, error: Exception) -> None:
        """Last resort for a bug in a handler: report it instead of dying."""
        self.output.warn(f"internal error on {value!r:.200}: {error!r}")
        body = value.get("body", value)
        msg_id = body.get("msg_id") if isinstance(body, dict) else None
        self._fail(self.last, msg_id, ERROR_CRASH, f"internal error: {error}")

    def _split(self, value: JsonObject) -> tuple[Envelope, JsonObject | None]:
        body = value.get("body")
        if isinstance(body, dict):
            src, dest = value.get("src"), value.get("dest")
            self.last = Envelope(
                src if isinstance(src, str) else self.last.src,
                dest if isinstance(dest, str) else self.last.dest,
            )
            return self.last, body
        if "type" in value:  # a bare body, addressed like the last envelope
            return self.last, value
        return self.last, None

    def _send(self, envelope: Envelope, msg_id: object, reply: JsonObject) -> None:
        body: JsonObject = {"type": reply.pop("type")}
        if msg_id is not None:
            body["in_reply_to"] = msg_id
        body.update(reply)
        self.output.send(envelope.dest, envelope.src, body)

    def _fail(self, envelope: Envelope, msg_id: object, code: int, text: str) -> None:
        if msg_id is None:
            self.output.warn(f"{text} (no msg_id, so no error reply)")
            return
        self._send(envelope, msg_id, {"type": "error", "code": code, "text": text})


def run(stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    output = Output(stdout, stderr)
    node = Node(output)
    for value in read_values(stdin):
        if isinstance(value, Garbage):
            output.warn(f"skipped input ({value.reason}): {value.text}")
            continue
        try:
            node.receive(value)
        except Exception as error:  # the node never dies on input; say what broke
            node.crashed(value, error)
    return 0
