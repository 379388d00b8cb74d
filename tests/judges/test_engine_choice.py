"""Which engine runs a `local:` model (JudgeConfig.local_engine), without loading any model."""

from __future__ import annotations

from pathlib import Path

import pytest

from judges import JudgeConfig
from judges.backends import llamacpp
from judges.judge import local_engine


@pytest.mark.parametrize(
    ("model", "device", "installed", "expected"),
    [
        ("local:qwen2.5-coder-1.5b", "cpu", True, "llama.cpp"),
        ("local:/models/x.gguf", "cpu", True, "llama.cpp"),
        ("local:qwen2.5-coder-1.5b", "cuda", True, "transformers"),  # llama.cpp here is a CPU build
        ("local:qwen2.5-coder-1.5b", "cpu", False, "transformers"),  # installed without llama-cpp-python
        ("local:/models/hf-folder", "cpu", True, "transformers"),  # llama.cpp reads GGUF files only
    ],
)
def test_auto_engine(monkeypatch: pytest.MonkeyPatch, model: str, device: str, installed: bool,
                     expected: str) -> None:
    monkeypatch.delenv("RRD_LOCAL_ENGINE", raising=False)
    monkeypatch.setattr(llamacpp, "available", lambda: installed)
    assert local_engine(JudgeConfig(model=model, local_device=device)) == expected


def test_the_environment_names_what_auto_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp, "available", lambda: True)
    monkeypatch.setenv("RRD_LOCAL_ENGINE", "hybrid")
    assert local_engine(JudgeConfig(model="local:qwen2.5-coder-1.5b", local_device="cpu")) == "hybrid"
    assert local_engine(JudgeConfig(model="local:qwen2.5-coder-1.5b", local_engine="transformers")) == "transformers"
    monkeypatch.setenv("RRD_LOCAL_ENGINE", "auto")
    assert local_engine(JudgeConfig(model="local:qwen2.5-coder-1.5b", local_device="cpu")) == "llama.cpp"
    monkeypatch.setenv("RRD_LOCAL_ENGINE", "vllm")
    with pytest.raises(ValueError, match="RRD_LOCAL_ENGINE must be"):
        local_engine(JudgeConfig(model="local:qwen2.5-coder-1.5b"))


def test_an_explicit_engine_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp, "available", lambda: True)
    assert local_engine(JudgeConfig(model="local:qwen2.5-coder-1.5b", local_engine="transformers")) == "transformers"
    with pytest.raises(ValueError, match=r"local_engine \(--local-engine\): expected one of auto, hybrid, llama.cpp"):
        JudgeConfig(model="local:qwen2.5-coder-1.5b", local_engine="llamacpp")  # type: ignore[arg-type]


def test_llama_cpp_names_what_it_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--local-engine transformers"):
        llamacpp.gguf_path(str(tmp_path))
