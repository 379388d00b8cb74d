"""In-process llama.cpp backend: the shipped GGUF as it is, several sequences decoded in one batch.

On a 2-core CPU, llama.cpp runs the embedded Qwen2.5-Coder-1.5B Q4_K_M several times faster than transformers runs
its dequantized bf16 copy (bench/bench_local_engines.py), and needs no conversion. Each `complete` call is planned
like the transformers backend's (prefix.plan_prefix_groups): a group's shared prefix is evaluated once into sequence
0, copied to one sequence per member, and the members' suffixes (in equal shares where they pay, see _run_group)
and every decode step run as one llama_decode batch; a lone request evaluates its whole prompt in one call.
Sequence 0 keeps the last prefix between calls, so the next wave of criteria for the same response, or the next
sample of the same prompt, starts where the last one ended; and every newly evaluated prefix (and a member's own
long prompt) is saved (llama_state_seq_get_data) in a PrefixStore of `prefix_store_mb`, from which a later prompt
starting the same way is restored by a memory copy instead of being evaluated again (kvstore.py says why that
pays). Each Completion counts the prompt tokens it did not evaluate in `usage.cached_tokens`.

Each sequence has a KV stream of its own (`seq_ctx` cells). llama.cpp's unified KV cache would let members share the
prefix's cells, but in 0.3.36 a sequence's logits then move (by up to 0.5) with the cells other sequences hold at
the same positions; with separate streams they depend only on the request (up to the rounding of batches of other
sizes), at the price of a copy of the prefix per member. A request longer than a stream (an initial-rubric prompt
quoting long samples) runs alone in a second, single-sequence context, made when first needed and only as large as
the longest such request so far (up to `max_context` cells): the KV cache is most of the memory a run needs beyond
the weights (28 KB a token for the 1.5B judge), so 8 streams of 2,048 cells and no 16k context made ahead of need
keep the default run under 3 GB.

Sampling, logprobs and the repetition penalty are computed here from the raw logits with numpy (judges/backends/
sampler.py), so verdicts carry P(YES) without llama.cpp's logits_all buffer, and seeds mean what they mean in the
transformers backend (one generator per request, seeded by seed and sample index).

The weights run in llama.cpp's repacked CPU layout or in the file's own, whichever layout.py measured to be faster
on this machine for a refine's mix of prompt evaluation and decoding.

llama-cpp-python is pinned exactly (the `local` extra): this module uses its ctypes bindings of llama.h and the thin
wrappers in llama_cpp._internals, which follow llama.cpp's C API from release to release.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..accounting import Accounting
from ..models import REGISTRY, bundled_gguf, canonical_spec
from ..types import Completion, Message, Request, TokenLogprobs, Usage
from .chat import answer_ends, encode_request, stop_cut
from .inprocess import InProcessBackend
from .kvstore import PrefixStore
from .layout import Layout, choose
from .prefix import common_prefix_len, plan_prefix_groups
from .sampler import Sampler

_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>")
#: the engine's name in cache keys: its answers differ from the transformers backend's (Q4_K_M vs bf16 weights)
ENGINE = "llama.cpp"
#: a prefix is saved for later only when at least this many of its tokens were evaluated. A save is a copy (~28 KB
#: a token, milliseconds) against 10-20 ms a token evaluated on 2 cores; at 64 the alternating overlap and conflict
#: checks, each adding a rubric or two, re-evaluated each other's lists (docs/results/local_engines/)
_MIN_SAVE = 16
#: a member of a group is saved beside its group's prefix when it evaluated at least this many tokens of its own: a
#: long suffix (the samples of a joint initial-list request) starts later prompts (the decompositions showing the
#: same samples), a criterion's or a check's few tokens start none, and saving them would only crowd the store
_MIN_SAVE_MEMBER = 128
#: what one more micro-batch costs, in tokens evaluated: on the plain layout a micro-batch costs ~210 ms before its
#: tokens and a token ~7.5 ms (about 28 tokens' worth; AMD EPYC, 2 cores, docs/results/local_engines/); counted as
#: 24, so a group is padded only where that clearly pays
_MICRO_BATCH_TOKENS = 24


def available() -> bool:
    """True when llama-cpp-python is installed (the `local` extra); never raises."""
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # noqa: BLE001 -- a missing or broken native build means "not available"
        return False
    return True


def gguf_path(spec: str, cache_dir: Path | None = None) -> Path:
    """The GGUF a `local:` spec names: a bundled model (assembled and sha256-verified once) or a .gguf file."""
    name = spec.removeprefix("local:").strip()
    if name in REGISTRY:
        return bundled_gguf(name, cache_dir)
    path = Path(name).expanduser().resolve()
    if path.is_file() and path.suffix == ".gguf":
        return path
    raise FileNotFoundError(
        f"llama.cpp runs GGUF files: {spec!r} is neither a bundled model ({sorted(REGISTRY)}) nor a .gguf file; "
        "use --local-engine transformers for a transformers model folder"
    )


@dataclass
class _Seq:
    """One request on its way through the model."""

    index: int
    ids: list[int]
    max_new: int
    sampler: Sampler
    seq_id: int = -1
    #: prompt tokens this request did not evaluate (reused, restored or copied from its group's prefix)
    cached: int = 0
    #: the last ids are the answer's known start (SamplingParams.answer_prefix): prompt to the model, answer to
    #: the repetition penalty and the completion's text
    answered: int = 0
    generated: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprobs] = field(default_factory=list)


@dataclass
class _Context:
    """A llama.cpp context: `n_seq` sequences of `seq_ctx` cells each; sequence 0 keeps `resident` tokens."""

    ctx: Any  # _internals.LlamaContext
    n_seq: int
    seq_ctx: int
    resident: list[int] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        """What a saved sequence state needs of the context it is restored into (llama.cpp refuses others)."""
        return self.n_seq, self.seq_ctx

    def reset(self, llama_cpp: Any) -> None:
        llama_cpp.llama_memory_clear(self.ctx.memory, True)
        self.resident = []


@dataclass
class _Loaded:
    llama_cpp: Any
    model: Any  # _internals.LlamaModel
    batched: _Context
    batch: Any  # llama_batch with room for n_batch tokens
    n_batch: int
    n_vocab: int
    stop_ids: frozenset[int]
    template: Any  # a Jinja2ChatFormatter
    long: _Context | None = None
    pieces: dict[int, bytes] = field(default_factory=dict)

    def piece(self, token: int) -> bytes:
        out = self.pieces.get(token)
        if out is None:
            buf = ctypes.create_string_buffer(256)
            n = self.llama_cpp.llama_token_to_piece(self.model.vocab, token, buf, 256, 0, True)
            out = bytes(buf[: max(0, n)])
            self.pieces[token] = out
        return out

    def text_of(self, token: int) -> str:
        return self.piece(token).decode("utf-8", errors="replace")


class LlamaCppBackend(InProcessBackend):
    """A GGUF model run in-process by llama.cpp on the CPU. Implements the Backend protocol."""

    def __init__(
        self,
        spec: str,
        accounting: Accounting | None = None,
        *,
        n_seq: int = 8,
        seq_ctx: int = 2048,
        max_context: int = 16384,
        n_batch: int = 512,
        threads: int | None = None,
        flash_attn: bool = False,
        min_prefix: int = 16,
        prefix_store_mb: int = 512,
        weights: Literal["auto", "repacked", "plain"] = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        """`spec`: a registry name (judges.models.REGISTRY) or a .gguf file.

        `n_seq` requests of up to `seq_ctx` tokens (prompt + max_tokens) are decoded together; longer ones, up to
        `max_context`, run one at a time. `flash_attn` is off by default: on CPU it computes attention in f16,
        which moved the embedded judge's P(YES) logprobs by up to 0.2 against the f32 path. `prefix_store_mb`
        bounds the saved prefix states (0: none saved, only sequence 0's last prefix is reused). `weights`: the
        layout llama.cpp runs the weights in (layout.py); auto times both once per machine and model.
        """
        super().__init__(accounting)
        self.spec = canonical_spec(spec)
        self.model = "local:" + self.spec
        self.cache_id = f"{self.model}@{ENGINE}"
        self.n_seq = max(1, n_seq)
        self.seq_ctx = max(256, seq_ctx)
        self.max_context = max(self.seq_ctx, max_context)
        self.n_batch = max(32, n_batch)
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.flash_attn = flash_attn
        self.min_prefix = max(1, min_prefix)
        self.cache_dir = cache_dir
        self.store = PrefixStore(max(0, prefix_store_mb) << 20)
        self.weights = weights
        #: the layout the loaded model runs in (None until loaded)
        self.layout: Layout | None = None
        self._loaded: _Loaded | None = None

    # ------------------------------------------------------------------------------------------------ loading

    def _unload(self) -> None:
        self.store.clear()
        lm, self._loaded = self._loaded, None
        if lm is not None:
            lm.llama_cpp.llama_batch_free(lm.batch)
            for c in (lm.batched, lm.long):
                if c is not None:
                    c.ctx.close()
            lm.model.close()

    def _context(self, llama_cpp: Any, model: Any, n_seq: int, seq_ctx: int) -> _Context:
        from llama_cpp import _internals

        p = llama_cpp.llama_context_default_params()
        p.n_ctx = n_seq * seq_ctx
        p.n_batch = self.n_batch
        p.n_ubatch = self.n_batch
        p.n_seq_max = n_seq
        p.kv_unified = False  # one KV stream per sequence (see the module docstring)
        p.n_threads = self.threads
        p.n_threads_batch = self.threads
        p.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        p.no_perf = True
        ctx = _internals.LlamaContext(model=model, params=p, verbose=False)
        return _Context(ctx, n_seq, ctx.n_ctx() // n_seq)

    def _ensure_loaded(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._logger import set_verbose
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        set_verbose(False)  # llama.cpp logs every tensor at load otherwise
        llama_cpp.llama_backend_init()
        path = gguf_path(self.spec, self.cache_dir)
        self.layout = choose(self.weights, path, self.threads, self.cache_dir)
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.use_extra_bufts = self.layout == "repacked"
        model = _internals.LlamaModel(path_model=str(path), params=mparams, verbose=False)
        template = model.metadata().get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{path} has no chat template (tokenizer.chat_template) in its metadata")
        stop = {t for t in range(model.n_vocab()) if llama_cpp.llama_vocab_is_eog(model.vocab, t)}
        for s in _STOP_TOKENS:
            ids = model.tokenize(s.encode(), False, True)
            if len(ids) == 1:
                stop.add(ids[0])

        def token_text(t: int) -> str:
            return model.token_get_text(t) if t >= 0 else ""

        fmt = Jinja2ChatFormatter(template, eos_token=token_text(model.token_eos()),
                                  bos_token=token_text(model.token_bos()))
        batched = self._context(llama_cpp, model, self.n_seq, self.seq_ctx)
        batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._loaded = _Loaded(llama_cpp, model, batched, batch, self.n_batch, model.n_vocab(), frozenset(stop), fmt)
        return self._loaded

    def _long(self, lm: _Loaded, need: int) -> _Context:
        """The single-sequence context, grown (by doubling from a stream's size) until it holds `need` tokens."""
        if lm.long is None or lm.long.seq_ctx < need:
            size = lm.batched.seq_ctx
            while size < need:
                size *= 2
            if lm.long is not None:
                lm.long.ctx.close()
                lm.long = None
            lm.long = self._context(lm.llama_cpp, lm.model, 1, min(size, self.max_context))
        return lm.long

    # ------------------------------------------------------------------------------------------------ compute

    def _compute(self, requests: list[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        try:
            lm = self._ensure_loaded()
        except Exception as e:  # noqa: BLE001 -- a missing wheel or corrupt file fails every request, clearly
            return [Completion(error=f"{type(e).__name__}: {e}") for _ in requests]
        short: list[_Seq] = []
        long: list[_Seq] = []
        for i, req in enumerate(requests):
            try:
                ids, answered = self._encode(lm, req)
            except Exception as e:  # noqa: BLE001 -- a backend reports failures, it never raises them
                out[i] = Completion(error=f"could not render prompt: {type(e).__name__}: {e}",
                                    retryable=False)
                continue
            if len(ids) >= self.max_context or not ids:
                out[i] = Completion(  # never ran: no tokens to count; would fail again the same way
                    retryable=False,
                    error=f"prompt is {len(ids)} tokens; {self.model} runs with a context of {self.max_context}")
                continue
            s = _Seq(i, ids, max(0, min(req.params.max_tokens, self.max_context - len(ids))), Sampler(req.params),
                     answered=answered)
            (short if len(ids) + s.max_new <= lm.batched.seq_ctx else long).append(s)
        work = [(lm.batched, group, p) for group, p in self._plan(short, lm.batched.n_seq)]
        if long:
            ctx = self._long(lm, max(len(s.ids) + s.max_new for s in long))
            work += [(ctx, [s], len(s.ids) - 1) for s in long]
        for ctx, group, p in work:
            t0 = time.monotonic()
            try:
                self._run_group(lm, ctx, group, p)
                latency = (time.monotonic() - t0) / len(group)
                for s in group:
                    out[s.index] = self._completion(lm, s, latency)
            except Exception as e:  # noqa: BLE001 -- fail this group's requests, keep the rest
                ctx.reset(lm.llama_cpp)
                for s in group:
                    out[s.index] = Completion(error=f"{type(e).__name__}: {e}", usage=Usage(len(s.ids), 0, 0.0))
        return [c if c is not None else Completion(error="internal: no result") for c in out]

    @staticmethod
    def _encode(lm: _Loaded, req: Request) -> tuple[list[int], int]:
        """The prompt's ids then the answer's known start, and how many ids that start is (chat.encode_request)."""
        def render(msgs: Sequence[Message]) -> str:
            return lm.template(messages=list(msgs)).prompt

        def tokenize(text: str, special: bool) -> list[int]:
            return list(lm.model.tokenize(text.encode("utf-8"), False, special))

        return encode_request(req.messages, req.params.answer_prefix, render, tokenize)

    def _plan(self, seqs: list[_Seq], n_seq: int) -> list[tuple[list[_Seq], int]]:
        """Batches of at most n_seq requests sharing a prefix. A request in no prefix group runs alone with all
        but its last token as the prefix, so it still reuses whatever sequence 0 holds from the last call."""
        out: list[tuple[list[_Seq], int]] = []
        for p, members in plan_prefix_groups([s.ids for s in seqs], min_prefix=self.min_prefix):
            group = sorted((seqs[i] for i in members), key=lambda s: (len(s.ids), s.index))
            if p == 0:
                out.extend(([s], len(s.ids) - 1) for s in group)
            else:
                out.extend((group[k : k + n_seq], p) for k in range(0, len(group), n_seq))
        return out

    def _decode(self, lm: _Loaded, ctx: _Context, tokens: list[tuple[int, int, int, bool]]) -> None:
        """llama_decode of (token, position, sequence, wants_logits) entries, n_batch at a time. Logits are
        readable only for the last call's entries, by their index in it (_run_group keeps those entries there)."""
        for start in range(0, len(tokens), lm.n_batch):
            self._check_cancelled()
            chunk = tokens[start : start + lm.n_batch]
            b = lm.batch
            b.n_tokens = len(chunk)
            for j, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[j] = tok
                b.pos[j] = pos
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = seq
                b.logits[j] = logits
            rc = lm.llama_cpp.llama_decode(ctx.ctx.ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc} (KV cache full or invalid batch)")

    def _logits(self, lm: _Loaded, ctx: _Context, batch_pos: int) -> np.ndarray:
        ptr = lm.llama_cpp.llama_get_logits_ith(ctx.ctx.ctx, batch_pos)
        return np.ctypeslib.as_array(ptr, shape=(lm.n_vocab,))

    def _run_group(self, lm: _Loaded, ctx: _Context, group: list[_Seq], p: int) -> None:
        """The prefix into sequence 0 (reusing what it holds), copied to the other members' sequences, then every
        member's suffix in one batch whose last tokens give the first logits, then the decode steps in shared
        batches. Sequence 0 belongs to the member with the longest suffix and keeps the prefix. A lone request
        evaluates its whole prompt in the first call instead, its first logits with it: on this CPU a call of one
        token costs as much as a step (docs/results/local_engines/).

        Equal shares: with one KV stream per sequence, llama.cpp cuts a batch into micro-batches holding the same
        number of tokens of every sequence in them, one per distinct suffix length. A shorter member can instead
        start as many tokens earlier, inside the shared prefix (its copy of the prefix is cut there), so every
        member evaluates as many tokens as the longest: one micro-batch, for prefix tokens evaluated twice. That
        pays when the extra tokens cost less than the micro-batches saved (_equal_shares)."""
        mem = ctx.ctx.memory
        cp = lm.llama_cpp
        group = sorted(group, key=lambda s: (s.max_new <= 0, -len(s.ids), s.index))
        live = [s for s in group if s.max_new > 0]
        solo = len(group) == 1 and bool(live)
        head = group[0].ids if solo else group[0].ids[:p]
        keep = self._restore(lm, ctx, group[0].ids[: len(head) - 1] if solo else head)
        cp.llama_memory_seq_rm(mem, 0, keep, -1)
        ctx.resident = ctx.resident[:keep]
        try:
            last = len(head) - 1
            self._decode(lm, ctx, [(head[k], k, 0, solo and k == last) for k in range(keep, len(head))])
            ctx.resident = list(head)
            if len(head) - keep >= _MIN_SAVE:
                self._save(lm, ctx, 0, head)
            if solo:
                group[0].seq_id, group[0].cached = 0, keep
                rows = [(len(head) - keep - 1) % lm.n_batch]  # the last token's index in the last call
            else:
                rows = self._suffixes(lm, ctx, group, live, p, keep)
            active = live
            while active:
                still: list[_Seq] = []
                for j, s in zip(rows, active):
                    answer = s.ids[len(s.ids) - s.answered:] + s.generated if s.answered else s.generated
                    tok = s.sampler.pick(self._logits(lm, ctx, j), answer, s.logprobs, lm.text_of)
                    s.generated.append(tok)
                    if tok not in lm.stop_ids and len(s.generated) < s.max_new and not self._ends(lm, s):
                        still.append(s)
                active = still
                if active:
                    self._decode(lm, ctx, [(s.generated[-1], len(s.ids) + len(s.generated) - 1, s.seq_id, True)
                                           for s in active])
                    rows = list(range(len(active)))
        except BaseException:
            ctx.reset(cp)
            raise
        cp.llama_memory_seq_rm(mem, 0, len(head), -1)
        for s in group[1:]:
            cp.llama_memory_seq_rm(mem, s.seq_id, -1, -1)

    def _suffixes(self, lm: _Loaded, ctx: _Context, group: list[_Seq], live: list[_Seq], p: int,
                  keep: int) -> list[int]:
        """Copy sequence 0's prefix to the other members, evaluate every live member's suffix (in equal shares
        when they pay), and save the members whose own prompt is long enough to start a later one; returns the
        first logits' rows, in the order of `live`."""
        mem = ctx.ctx.memory
        cp = lm.llama_cpp
        width = max((len(s.ids) - p for s in live), default=0)
        equal = self._equal_shares([len(s.ids) for s in live], p, width, lm.n_batch)
        first: list[tuple[int, int, int, bool]] = []
        for n, s in enumerate(group):
            s.seq_id = n
            start = max(0, len(s.ids) - width) if s.max_new > 0 and equal else p
            s.cached = start if n else keep  # member 0 evaluated the prefix; the others got a copy of it
            if n:
                cp.llama_memory_seq_cp(mem, 0, n, -1, -1)  # a whole-stream copy: sequence 0 holds the prefix
                if start < p:
                    cp.llama_memory_seq_rm(mem, n, start, -1)
            if s.max_new > 0:
                last = len(s.ids) - 1
                first += [(s.ids[k], k, n, k == last) for k in range(start, len(s.ids))]
        if len(first) > lm.n_batch:  # more than one call: all but the last tokens first, then those
            self._decode(lm, ctx, [e for e in first if not e[3]])
            first = [e for e in first if e[3]]
        self._decode(lm, ctx, first)
        for s in live:
            if len(s.ids) - max(p, s.cached) >= _MIN_SAVE_MEMBER:
                self._save(lm, ctx, s.seq_id, s.ids)
        return [j for j, e in enumerate(first) if e[3]]

    @staticmethod
    def _equal_shares(lengths: list[int], p: int, width: int, n_batch: int) -> bool:
        """Whether the members (prompt `lengths`, all longer than the prefix `p`) evaluate equal shares of `width`
        tokens: when that fits one call and costs fewer extra tokens than the micro-batches it saves."""
        own = sum(n - p for n in lengths)
        padded = sum(min(n, width) for n in lengths)
        saved = len({n - p for n in lengths}) - 1
        return padded <= n_batch and padded - own <= _MICRO_BATCH_TOKENS * saved

    def _restore(self, lm: _Loaded, ctx: _Context, prefix: list[int]) -> int:
        """Make sequence 0 start with the longest evaluated part of `prefix` it can get (what it holds, or a saved
        state that shares more); returns that part's length."""
        keep = common_prefix_len(ctx.resident, prefix)
        n, saved = self.store.longest(prefix, ctx.shape)
        if saved is None or n < keep + self.min_prefix:
            return keep
        cp = lm.llama_cpp
        cp.llama_memory_seq_rm(ctx.ctx.memory, 0, -1, -1)
        if not cp.llama_state_seq_set_data(ctx.ctx.ctx, saved.state, saved.nbytes, 0):
            ctx.reset(cp)  # a state this context cannot take: evaluate the prefix instead
            return 0
        ctx.resident = saved.tokens.tolist()
        self.store.count_restore(n)
        return n

    def _save(self, lm: _Loaded, ctx: _Context, seq: int, tokens: list[int]) -> None:
        """Save sequence `seq` (holding exactly `tokens`) into the store, if it fits there."""
        cp = lm.llama_cpp
        size = cp.llama_state_seq_get_size(ctx.ctx.ctx, seq)
        if not 0 < size <= self.store.max_bytes:
            return
        buf = (ctypes.c_uint8 * size)()
        written = cp.llama_state_seq_get_data(ctx.ctx.ctx, buf, size, seq)
        if written:
            self.store.put(ctx.shape, tokens, buf, written)

    @staticmethod
    def _text(lm: _Loaded, ids: list[int]) -> str:
        return b"".join(lm.piece(t) for t in ids).decode("utf-8", errors="replace")

    @classmethod
    def _ends(cls, lm: _Loaded, s: _Seq) -> bool:
        """Whether s's generated text is a whole answer by its stop strings or final words."""
        p = s.sampler.params
        return bool(p.stop or p.final_words) and answer_ends(cls._text(lm, s.generated), p)

    @classmethod
    def _completion(cls, lm: _Loaded, s: _Seq, latency: float) -> Completion:
        ids = s.generated
        if ids and ids[-1] in lm.stop_ids:
            ids = ids[:-1]
        text = cls._text(lm, ids)
        cut = stop_cut(text, s.sampler.params.stop)
        text = text if cut is None else text[:cut]
        return Completion(
            text=s.sampler.params.answer_prefix + text,
            logprobs=s.logprobs[: len(ids)] if s.sampler.params.logprobs else [],
            usage=Usage(prompt_tokens=len(s.ids), completion_tokens=len(s.generated), cost_usd=0.0,
                        cached_tokens=s.cached),
            latency_s=latency,
        )
