"""Fixtures for GRPO runs on CPU: a random tiny Llama policy with the real SmolLM2 tokenizer, and small data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROMPTS = {
    "What is the capital of France?": ["The response names Paris.", "The response is one sentence."],
    "Name a fruit that is yellow.": ["The response names a yellow fruit.", "The response is short."],
    "Say hello in Spanish.": ["The response says hola.", "The response is in Spanish."],
    "Give one tip for sleeping well.": ["The response gives a sleep tip.", "The response gives one tip."],
}


@pytest.fixture(scope="session")
def tiny_policy(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama (hidden 32) over SmolLM2's tokenizer and chat template.

    Random weights make generation fast and the completions gibberish; the point is the plumbing (generation,
    the rubric reward through the SmolLM2 judge, the Dr.GRPO loss, checkpoints), not learning.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from judges.models import resolve_local_model

    tok = AutoTokenizer.from_pretrained(resolve_local_model("smollm2-135m"))
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    out = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_data(folder: Path) -> tuple[Path, Path]:
    """prompts.jsonl and rubrics.jsonl (short form) for PROMPTS."""
    prompts, rubrics = folder / "prompts.jsonl", folder / "rubrics.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    rubrics.write_text("".join(json.dumps({"prompt": p, "rubrics": r}) + "\n" for p, r in PROMPTS.items()))
    return prompts, rubrics


def tiny_config(tmp_path: Path, policy: Path, **grpo) -> dict:
    prompts, rubrics = write_data(tmp_path)
    return {
        "output_dir": str(tmp_path / "out"),
        "torch_threads": 2,
        "policy": {"model": str(policy)},
        "data": {"source": str(prompts)},
        "rubrics": {"path": str(rubrics), "refine_missing": False},
        "judge": {"model": "local:smollm2-135m", "cache_path": str(tmp_path / "judge-cache.sqlite")},
        "reward": {"log_criteria": 2},
        "grpo": {"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 3,
                 "max_completion_length": 12, "learning_rate": 1e-4, "save_steps": 3,
                 "activation_checkpointing": False, "seed": 0, **grpo},
    }
