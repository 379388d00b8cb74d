"""In-process transformers backend for small local judges, with KV-cache reuse of shared prompt prefixes.

Grading prompts put the long response first and the short criterion last (see templates.py), so the k criteria of
one response share almost their whole prompt. We run that shared prefix once, copy its KV cache along the batch
dimension, and only run the k short suffixes: on CPU this turns k full prompts into one prompt plus k tails.

Suffixes are right-padded; every row gets its own position ids and a 2D attention mask, so a row's result does not
depend on what else is in its batch (up to float rounding). Compute runs in a worker thread, one batch at a time,
so the event loop stays responsive while the CPU is busy.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..accounting import Accounting
from ..models import canonical_spec, resolve_local_model
from ..types import Completion, Message, Request, SamplingParams, TokenLogprobs, Usage
from .chat import answer_ends, encode_request, stop_cut
from .inprocess import GenerationCancelled, InProcessBackend
from .prefix import plan_prefix_groups
from .sampler import MIN_TOP_LOGPROBS, seed_for

__all__ = ["GenerationCancelled", "LocalBackend", "plan_prefix_groups"]

if TYPE_CHECKING:
    import torch

_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>")


@dataclass
class _Row:
    """One request on its way through the model."""

    index: int
    ids: list[int]
    params: SamplingParams
    max_new: int
    #: prompt tokens this row did not evaluate: the group's prefix, run once by its first member
    cached: int = 0
    #: the last ids are the answer's known start (SamplingParams.answer_prefix): prompt to the model, answer to
    #: the repetition penalty and the completion's text
    answered: int = 0
    generated: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprobs] = field(default_factory=list)


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    device: Any
    max_context: int
    stop_ids: frozenset[int]
    pad_id: int
    token_text: dict[int, str] = field(default_factory=dict)  # memo of decoded single tokens

    def text_of(self, token_id: int) -> str:
        text = self.token_text.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id], skip_special_tokens=False)
            self.token_text[token_id] = text
        return text


class LocalBackend(InProcessBackend):
    """A transformers causal LM run in-process (CPU by default). Implements the Backend protocol."""

    def __init__(
        self,
        spec: str,
        accounting: Accounting | None = None,
        *,
        dtype: str = "bfloat16",
        device: str = "cpu",
        max_batch: int = 16,
        prefix_reuse: bool = True,
        threads: int | None = None,
        min_prefix: int = 16,
        max_batch_tokens: int = 8192,
        max_context: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """`spec`: a registry name (judges.models.REGISTRY), a .gguf file or a transformers folder.

        `threads` sets torch's (process-wide) intra-op thread count at load. `max_batch_tokens` bounds rows x
        padded new tokens per forward pass, so long prompts are batched less and attention memory stays bounded.
        `max_context` caps the prompt + generation length below the model's own context.
        """
        super().__init__(accounting)
        self.spec = canonical_spec(spec)
        self.model = "local:" + self.spec
        self.dtype = dtype
        self.device = device
        self.max_batch = max(1, max_batch)
        self.prefix_reuse = prefix_reuse
        self.threads = threads
        self.min_prefix = max(1, min_prefix)
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.max_context = max_context
        self.cache_dir = cache_dir
        self._loaded: _Loaded | None = None

    # ------------------------------------------------------------------------------------------------ loading

    def _unload(self) -> None:
        self._loaded = None
        gc.collect()

    def _ensure_loaded(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        from transformers.utils import logging as hf_logging

        folder = resolve_local_model(self.spec, self.cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a per-tensor bar on every start is noise in a CLI's output
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(
                folder, dtype=getattr(torch, self.dtype), local_files_only=True
            )
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        device = torch.device(self.device)
        model.to(device).eval()
        stop: set[int] = set()
        for ids in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
            if isinstance(ids, int):
                stop.add(ids)
            elif isinstance(ids, (list, tuple)):
                stop.update(int(i) for i in ids)
        vocab = tokenizer.get_vocab()
        stop.update(vocab[t] for t in _STOP_TOKENS if t in vocab)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stop, default=0)
        ctx = self.max_context or getattr(model.config, "max_position_embeddings", None) or 4096
        self._loaded = _Loaded(model, tokenizer, device, int(ctx), frozenset(stop), int(pad))
        return self._loaded

    # ------------------------------------------------------------------------------------------------ compute

    def _compute(self, requests: list[Request]) -> list[Completion]:
        import torch

        with torch.inference_mode():
            return self._complete(requests)

    def _complete(self, requests: list[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        try:
            lm = self._ensure_loaded()
        except Exception as e:  # noqa: BLE001 -- a missing wheel or corrupt file fails every request, clearly
            msg = f"{type(e).__name__}: {e}"
            return [Completion(error=msg) for _ in requests]

        rows: list[_Row] = []
        for i, req in enumerate(requests):
            try:
                ids, answered = self._encode(lm, req)
            except Exception as e:  # noqa: BLE001 -- a backend reports failures, it never raises them
                out[i] = Completion(error=f"could not render prompt: {type(e).__name__}: {e}",
                                    retryable=False)
                continue
            if len(ids) >= lm.max_context:
                out[i] = Completion(  # never ran: no tokens to count; would fail again the same way
                    retryable=False,
                    error=f"prompt is {len(ids)} tokens; {self.model} has a context of {lm.max_context}")
                continue
            max_new = max(0, min(req.params.max_tokens, lm.max_context - len(ids)))
            rows.append(_Row(i, ids, req.params, max_new, answered=answered))

        for row, comp in self._run_rows(lm, rows):
            out[row.index] = comp
        return [c if c is not None else Completion(error="internal: no result") for c in out]

    @staticmethod
    def _encode(lm: _Loaded, req: Request) -> tuple[list[int], int]:
        """Token ids of the chat prompt, with message contents encoded as plain text, then the answer's known
        start, and how many ids that start is (see chat.encode_request)."""
        tok = lm.tokenizer

        def render(messages: Sequence[Message]) -> str:
            return tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)

        def tokenize(text: str, special: bool) -> list[int]:
            return list(tok(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"])

        return encode_request(req.messages, req.params.answer_prefix, render, tokenize)

    def _run_rows(self, lm: _Loaded, rows: list[_Row]) -> list[tuple[_Row, Completion]]:
        """Plan prefix groups, then run each group's batches; a failing batch is retried row by row."""
        done: list[tuple[_Row, Completion]] = []
        if self.prefix_reuse:
            plan = plan_prefix_groups([r.ids for r in rows], min_prefix=self.min_prefix)
        else:
            plan = [(0, list(range(len(rows))))]
        loose = [rows[i] for p, members in plan if p == 0 for i in members]
        batches: list[tuple[int, list[_Row]]] = [(p, [rows[i] for i in members]) for p, members in plan if p > 0]
        if loose:
            batches.append((0, loose))

        for p, members in batches:
            members.sort(key=lambda r: (len(r.ids), r.index))  # similar lengths together: less padding
            prefix_cache = None
            if p > 0:
                t0 = time.monotonic()
                try:
                    prefix_cache = self._prefill_prefix(lm, members[0].ids[:p])
                except Exception:  # noqa: BLE001 -- fall back to running each row in full
                    p = 0
                prefix_s = time.monotonic() - t0
                for r in members[1:]:
                    r.cached = p
            else:
                prefix_s = 0.0
            for chunk in self._chunks(members, p):
                t0 = time.monotonic()
                try:
                    self._generate(lm, chunk, p, prefix_cache)
                    latency = time.monotonic() - t0 + prefix_s * len(chunk) / len(members)
                    done.extend((r, self._completion(lm, r, latency)) for r in chunk)
                except Exception as e:  # noqa: BLE001 -- find the row that fails, and fail only it
                    done.extend(self._isolate(lm, chunk, e))
        return done

    def _chunks(self, rows: list[_Row], p: int) -> list[list[_Row]]:
        """Split length-sorted rows into batches of at most max_batch rows and max_batch_tokens padded tokens."""
        chunks: list[list[_Row]] = []
        current: list[_Row] = []
        for r in rows:
            width = max([len(x.ids) - p for x in current] + [len(r.ids) - p])
            if current and (len(current) >= self.max_batch or (len(current) + 1) * width > self.max_batch_tokens):
                chunks.append(current)
                current = []
            current.append(r)
        if current:
            chunks.append(current)
        return chunks

    def _isolate(self, lm: _Loaded, chunk: list[_Row], error: Exception) -> list[tuple[_Row, Completion]]:
        """Rerun a failed batch one row at a time without prefix reuse, so one bad request fails alone."""
        if len(chunk) == 1:
            r = chunk[0]
            return [(r, Completion(error=f"{type(error).__name__}: {error}", usage=Usage(len(r.ids), 0, 0.0)))]
        results = []
        for r in chunk:
            r.cached = 0
            r.generated.clear()
            r.logprobs.clear()
            t0 = time.monotonic()
            try:
                self._generate(lm, [r], 0, None)
                results.append((r, self._completion(lm, r, time.monotonic() - t0)))
            except Exception as e:  # noqa: BLE001
                results.append((r, Completion(error=f"{type(e).__name__}: {e}", usage=Usage(len(r.ids), 0, 0.0))))
        return results

    @staticmethod
    def _ends(lm: _Loaded, row: _Row) -> bool:
        """Whether row's generated text is a whole answer by its stop strings or final words."""
        p = row.params
        return bool(p.stop or p.final_words) and answer_ends(
            lm.tokenizer.decode(row.generated, skip_special_tokens=False), p)

    def _completion(self, lm: _Loaded, row: _Row, latency: float) -> Completion:
        ids = row.generated
        if ids and ids[-1] in lm.stop_ids:
            ids = ids[:-1]
        text = lm.tokenizer.decode(ids, skip_special_tokens=False) if ids else ""
        cut = stop_cut(text, row.params.stop)
        text = text if cut is None else text[:cut]
        return Completion(
            text=row.params.answer_prefix + text,
            logprobs=row.logprobs[: len(ids)] if row.params.logprobs else [],
            usage=Usage(prompt_tokens=len(row.ids), completion_tokens=len(row.generated), cost_usd=0.0,
                        cached_tokens=row.cached),
            latency_s=latency,
        )

    def _prefill_prefix(self, lm: _Loaded, prefix: list[int]) -> Any:
        """Run the shared prefix once (batch 1) and return its KV cache."""
        import torch
        from transformers import DynamicCache

        ids = torch.tensor([prefix], dtype=torch.long, device=lm.device)
        cache = DynamicCache(config=lm.model.config)
        lm.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        return cache

    @staticmethod
    def _expand_cache(lm: _Loaded, prefix_cache: Any, batch: int) -> Any:
        """A fresh cache holding the prefix once per row (expand is a view; the first update copies it)."""
        from transformers import DynamicCache

        layers = [
            (k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
            for k, v in ((layer.keys, layer.values) for layer in prefix_cache.layers)
        ]
        return DynamicCache(ddp_cache_data=layers, config=lm.model.config)

    def _generate(self, lm: _Loaded, rows: list[_Row], p: int, prefix_cache: Any) -> None:
        """Decode a batch of rows that share the first `p` tokens (whose cache is given) until each stops."""
        import torch
        from transformers import DynamicCache

        dev = lm.device
        b = len(rows)
        suffixes = [r.ids[p:] for r in rows]
        width = max(len(s) for s in suffixes)
        input_ids = torch.full((b, width), lm.pad_id, dtype=torch.long)
        attention = torch.zeros((b, p + width), dtype=torch.long)
        attention[:, :p] = 1
        for i, s in enumerate(suffixes):
            input_ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            attention[i, p : p + len(s)] = 1
        positions = torch.arange(p, p + width, dtype=torch.long).expand(b, width)
        last = torch.tensor([len(s) - 1 for s in suffixes], dtype=torch.long)
        cache = self._expand_cache(lm, prefix_cache, b) if p > 0 else DynamicCache(config=lm.model.config)
        attention = attention.to(dev)
        out = lm.model(
            input_ids=input_ids.to(dev),
            attention_mask=attention,
            position_ids=positions.to(dev),
            cache=cache,
            use_cache=True,
            logits_to_keep=last.unsqueeze(1).to(dev),
        )
        logits = out.logits[:, -1, :]
        next_pos = torch.tensor([len(r.ids) for r in rows], dtype=torch.long)
        generators = [
            torch.Generator(device="cpu").manual_seed(seed_for(r.params)) if r.params.temperature > 0 else None
            for r in rows
        ]
        active = [i for i, r in enumerate(rows) if r.max_new > 0]
        # `active` lists the rows still in the batch, in batch order; the cache and mask follow it
        while active:
            self._check_cancelled()
            chosen = self._pick(lm, [rows[i] for i in active], [generators[i] for i in active], logits)
            keep: list[int] = []
            for j, i in enumerate(active):
                r = rows[i]
                tok = chosen[j]
                r.generated.append(tok)
                if tok not in lm.stop_ids and len(r.generated) < r.max_new and not self._ends(lm, r):
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(active):
                sel = torch.tensor(keep, dtype=torch.long, device=dev)
                cache.batch_select_indices(sel)
                attention = attention.index_select(0, sel)
                active = [active[j] for j in keep]
            step_ids = torch.tensor([[rows[i].generated[-1]] for i in active], dtype=torch.long, device=dev)
            pos = next_pos[active].unsqueeze(1).to(dev)
            attention = torch.cat([attention, torch.ones((len(active), 1), dtype=attention.dtype, device=dev)], 1)
            out = lm.model(
                input_ids=step_ids,
                attention_mask=attention,
                position_ids=pos,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            next_pos[active] += 1
            logits = out.logits[:, -1, :]

    @staticmethod
    def _pick(lm: _Loaded, rows: list[_Row], generators: list[Any], logits: torch.Tensor) -> list[int]:
        """Choose each row's next token and record its logprobs (raw model distribution, float32)."""
        import torch

        logits = logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        want_k = max((max(r.params.top_logprobs, MIN_TOP_LOGPROBS) for r in rows if r.params.logprobs), default=0)
        top_v = top_i = None
        if want_k:
            top_v, top_i = torch.topk(logp, min(want_k, logp.shape[-1]), dim=-1)
            top_v, top_i = top_v.cpu(), top_i.cpu()
        greedy = torch.argmax(logits, dim=-1).tolist()
        chosen: list[int] = []
        for j, r in enumerate(rows):
            t = r.params.temperature
            row_logits = logits[j]
            penalty = r.params.repetition_penalty
            answer = r.ids[len(r.ids) - r.answered:] + r.generated if r.answered else r.generated
            penalised = penalty != 1.0 and bool(answer)
            if penalised:
                # HF's rule over the tokens of this row's answer (not the prompt: rubrics may quote it)
                seen = torch.tensor(sorted(set(answer)), dtype=torch.long, device=logits.device)
                vals = row_logits[seen]
                row_logits = row_logits.clone()
                row_logits[seen] = torch.where(vals > 0, vals / penalty, vals * penalty)
            if t <= 0:
                tok = int(torch.argmax(row_logits).item()) if penalised else int(greedy[j])
            else:
                probs = torch.softmax(row_logits / t, dim=-1).cpu()
                if r.params.top_p < 1.0:
                    sp, si = torch.sort(probs, descending=True)
                    drop = (torch.cumsum(sp, 0) - sp) >= r.params.top_p
                    sp[drop] = 0.0
                    probs = torch.zeros_like(probs).scatter_(0, si, sp)
                tok = int(torch.multinomial(probs, 1, generator=generators[j]).item())
            chosen.append(tok)
            if r.params.logprobs and top_v is not None and top_i is not None:
                k = max(r.params.top_logprobs, MIN_TOP_LOGPROBS)
                top = [(lm.text_of(int(i)), float(v)) for i, v in zip(top_i[j, :k].tolist(), top_v[j, :k].tolist())]
                r.logprobs.append(TokenLogprobs(token=lm.text_of(tok), logprob=float(logp[j, tok]), top=top))
        return chosen
