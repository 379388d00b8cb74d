"""Shared fixtures: real llama-cpp-python OpenAI-compatible servers on 127.0.0.1, serving SmolLM2 or the embedded
1.5B judge."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require(module: str, why: str) -> None:
    """Skip locally when an optional tool is missing, but fail in CI, where everything must run."""
    try:
        __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is required in CI ({why})")
        pytest.skip(f"{module} not installed ({why}); `pip install -e '.[test]'`")


def _bundled(name: str) -> Path:
    from judges.models import ModelUnavailableError, bundled_gguf

    try:
        return bundled_gguf(name)  # sha256-verified, as a user serving it would get it
    except ModelUnavailableError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def _serve(gguf: Path, n_ctx: int, tmp_path_factory: pytest.TempPathFactory):
    """Run `python -m llama_cpp.server` on `gguf` on a free loopback port; yields its api_base."""
    _require("llama_cpp.server.app", "the OpenAI-compatible integration server")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", str(n_ctx), "--logits_all", "true", "--n_threads", "2"],
            stdout=fh, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return _bundled("smollm2-135m")


@pytest.fixture(scope="session")
def llama_server(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory):
    """SmolLM2-135M served: fast, for the plumbing (it judges at chance and often answers no YES or NO at all)."""
    yield from _serve(smollm2_gguf, 4096, tmp_path_factory)


@pytest.fixture(scope="session")
def qwen_server(tmp_path_factory: pytest.TempPathFactory):
    """The embedded 1.5B judge served, for tests that need real YES/NO answers through a server (a small context:
    --logits_all keeps n_ctx x 152k vocabulary logits)."""
    yield from _serve(_bundled("qwen2.5-coder-1.5b"), 1024, tmp_path_factory)
