"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for fault-injection tests and the overhead benchmark.

It speaks real HTTP, so the whole client stack (litellm, openai, httpx, our retries) is exercised. Faults are
scripted per request number: status codes, Retry-After headers, delays past the client timeout, malformed
bodies. It is not a model: integration tests of verdicts use llama-cpp-python's real server instead.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    text: str = "YES"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: str | None = None  # sent verbatim instead of a chat completion (malformed bodies)


Script = Callable[[int, dict], Reply]  # (request number from 0, request JSON) -> Reply


def _completion_body(text: str, request: dict) -> dict:
    body: dict = {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "loopback"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
    }
    if request.get("logprobs"):
        body["choices"][0]["logprobs"] = {
            "content": [
                {
                    "token": text,
                    "logprob": -0.1,
                    "bytes": None,
                    "top_logprobs": [
                        {"token": text, "logprob": -0.1, "bytes": None},
                        {"token": "NO" if text == "YES" else "YES", "logprob": -2.4, "bytes": None},
                    ],
                }
            ]
        }
    return body


class LoopbackServer:
    """Runs in a background thread with its own event loop; use as a context manager.

    With `process=True` it runs in a forked child process instead, so a benchmark's client does not share the
    GIL with the server (the recorded `requests` then stay in the child and are not visible here).
    """

    def __init__(self, script: Script | None = None, port: int = 0, process: bool = False):
        self.script: Script = script or (lambda n, req: Reply())
        self.port = port
        self.process = process
        self._child: multiprocessing.process.BaseProcess | None = None
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        with self._lock:
            n = len(self.requests)
            self.requests.append(payload)
        reply = self.script(n, payload)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.raw_body is not None:
            return web.Response(status=reply.status, text=reply.raw_body, headers=reply.headers,
                                content_type="application/json")
        if reply.status != 200:
            err = {"error": {"message": f"scripted {reply.status}", "type": "loopback", "code": reply.status}}
            return web.json_response(err, status=reply.status, headers=reply.headers)
        return web.json_response(_completion_body(reply.text, payload), headers=reply.headers)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def __enter__(self) -> LoopbackServer:
        if self.process:
            if not self.port:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    self.port = sock.getsockname()[1]
            self._child = multiprocessing.get_context("fork").Process(target=self._serve, daemon=True)
            self._child.start()
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError("loopback server process did not start")
                    time.sleep(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._child is not None:
            self._child.terminate()
            self._child.join(10)
            return
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
