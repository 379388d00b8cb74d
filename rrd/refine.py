"""The RRD loop (docs/rrd-method.md, Stages 1-3): initial rubrics, recursive decompose-filter, weights.

Determinism with concurrency: grading is the bulk of the calls and is independent per rubric, so each *wave*
grades every not-yet-graded rubric in the queue on all N samples and both references in one `grade_many` batch
(the backend runs it concurrently); the decisions are then made one rubric at a time in queue order. Children
created during a wave are graded in the next wave. Decisions depend only on verdict and proposer texts, never on
call timing, so a fixed seed and cache give the same RubricSet.

Choices where the method page is silent (each is configurable or documented on RefineConfig):
- "Duplicate of anything seen" = any rubric queued earlier, whatever its fate, the parent and the sibling
  included; caught when a proposer's answer is read (rrd.dedup: canonical text or near-duplicate similarity), so
  a repeat costs no judge call. Repeats are "dropped", not rejected, and do not count towards T; an answer
  whose children all repeat, that cannot be read, or (initial list) that is one rubric over and over is
  re-asked with feedback (RefineConfig.repair_attempts). A parent that still cannot be decomposed is kept as
  atomic or rejected (RefineConfig.on_failed_decomposition), and a loop that accepts nothing falls back to the
  initial rubrics (RefineConfig.fallback).
- Unscored verdicts are not YES when counting c; they are recorded, and for the weights they are imputed with
  the rubric's mean over its scored samples (neutral for the covariance).
- A rubric too coarse at the depth cap goes on to the filters (and may be accepted); `detail` says so.
- Misalignment with an unscored reference verdict (or no reference) keeps the rubric and notes why.
- An unreadable or failed overlap/conflict check keeps the rubric ("no overlap"/"no conflict"), noted in detail.
- Rejections (failed_decomposition in "reject" mode, misaligned, overlap, conflict) count towards T.
- A wave grades the whole queue, so when T stops the loop the rubrics left pending were already graded: a few
  wasted calls bought concurrency. Their verdicts are kept on them in the tree.
- Calls and cost are counted from the completions and verdicts of this prompt (rrd.meter.CallMeter), so the stats stay
  right when several prompts are refined at once on one shared Accounting.

Stage 3 (the weights) is `accepted_weights`, near the end; `Progress` is what the loop reports as it runs.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any, Awaitable, Callable, Mapping, Sequence

from judges.judge import GradeItem, Judge
from judges.types import Completion, Message, SamplingParams, Verdict, verdict_value

from . import prompts
from .config import RefineConfig
from .dedup import SIBLING, DuplicateIndex, Match, Reference, describe_repeat, repeat_problems
from .meter import CallMeter
from .records import Origin, Reason, Rubric, RubricSet, Sample
from .pool import Models
from .sampling import draw, provided_samples
from .split import split_compound
from .weights import impute_unscored, llm_weights, uniform_weights, whitened_uniform_weights

_CheckTemplate = Callable[[str, Sequence[str]], "list[Message]"]


@dataclass
class Progress:
    """Where one prompt's refinement stands, handed to a progress callback whenever it changes."""

    prompt_id: str | None
    stage: str
    queue: int
    accepted: int
    rejected: int
    dropped: int
    calls: float
    #: rubrics the loop has decided so far (accepted, rejected or decomposed), for a rate and an ETA
    processed: int = 0


ProgressCallback = Callable[[Progress], None]


class _Refinement:
    """State of one prompt's loop: the tree, the queue, the accepted set A and the rejection counter."""

    def __init__(self, prompt: str, judge: Judge, proposer: Judge, config: RefineConfig, meter: CallMeter,
                 prompt_id: str | None = None, progress: ProgressCallback | None = None):
        self.prompt, self.judge, self.proposer, self.config, self.meter = prompt, judge, proposer, config, meter
        self.prompt_id, self.progress = prompt_id, progress
        self.samples: list[Sample] = []
        self.refs: dict[str, Sample] = {}
        self.tree: list[Rubric] = []
        self.queue: deque[Rubric] = deque()
        self.accepted: list[Rubric] = []
        self.index = DuplicateIndex(config.near_duplicate_threshold)  # every rubric ever queued
        self.taken: set[str] = set()
        self.graded: set[str] = set()
        self.rejections = 0
        self.processed = 0
        self.waves = 0
        self.dropped = 0
        self.repairs = 0
        self.repaired = 0
        self.failed_decompositions = 0
        self.kept_atomic = 0
        self.splits = 0
        self.candidates = 0
        self.candidate_wins = 0
        self.decompose_calls = 0
        self.over_budget = 0
        self.initial_overlaps = 0
        self.unconfirmed_checks = 0
        self.errors: list[str] = []

    def report(self, stage: str) -> None:
        if self.progress is not None:
            self.progress(Progress(self.prompt_id, stage, len(self.queue), len(self.accepted), self.rejections,
                                   self.dropped, self.meter.totals()["calls"], self.processed))

    # -- proposer calls ---------------------------------------------------------------------------------------
    def _params(self, max_tokens: int, candidate: int = 0, answer_prefix: str = "", stop: tuple[str, ...] = (),
                final_words: tuple[str, ...] = ()) -> SamplingParams:
        """Greedy proposer settings, or those of the `candidate`-th sampled decomposition candidate (its own
        sample_index, so the cache keeps the candidates apart)."""
        c = self.config
        temperature = c.candidate_temperature if candidate else c.proposer_temperature
        return SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=c.seed,
                              repetition_penalty=c.proposer_repetition_penalty, sample_index=candidate,
                              top_p=c.sample_top_p if candidate else 1.0, answer_prefix=answer_prefix, stop=stop,
                              final_words=final_words)

    async def ask(self, stage: str, messages: list[Message], max_tokens: int, owner: Rubric | None,
                  candidate: int = 0, answer_prefix: str = "", stop: tuple[str, ...] = (),
                  final_words: tuple[str, ...] = ()) -> Completion:
        self.report(stage)
        with self.meter.timed(stage):
            completion = await self.proposer.generate(
                messages, self._params(max_tokens, candidate, answer_prefix, stop, final_words))
        calls = self.meter.completion(stage, completion)
        if owner is not None:
            owner.judge_calls += calls
            self.decompose_calls += stage in ("decompose", "repair", "candidate")
        return completion

    def _budget_left(self) -> bool:
        """Whether another proposer call may go to a decomposition (RefineConfig.max_decompose_calls)."""
        cap = self.config.max_decompose_calls
        return cap is None or self.decompose_calls < cap

    async def _propose(self, stage: str, messages: list[Message], parent: Rubric | None,
                       first: Completion | None = None) -> tuple[list[str], str | None]:
        """Ask for a rubric list (initial list, or `parent`'s two children), drop the repeats in it, and re-ask
        with feedback while the answer is unusable. Returns (the new rubric texts to queue, what was wrong with
        the last answer or None). After the last attempt the answer with the most new rubrics is returned.
        `first`: the answer to `messages`, when the caller asked for it in a batch of its own (already metered)."""
        exactly = 2 if parent is not None else None
        original = messages
        shape = f"a JSON list of exactly {exactly} strings" if exactly else "a JSON list of strings"
        answers: list[list[str]] = []
        for attempt in range(self.config.repair_attempts + 1):
            if attempt == 0 and first is not None:
                completion = first
            else:
                completion = await self.ask(stage if attempt == 0 else "repair", messages,
                                             self.config.proposer_max_tokens, parent)
            self.repairs += attempt > 0
            if not completion.ok:  # the backend already retried it: a repair turn would not help
                return max(answers, key=len, default=[]), f"{stage} call failed: {completion.error}"
            texts = prompts.parse_rubric_list(completion.text, exactly=exactly)
            if texts is None:
                problems = [f"it is not {shape}: {completion.text[:300]!r}"]
            else:
                new, repeats = self._screen(texts)
                self._drop(repeats, parent, attempt)
                answers.append(new)
                problems = repeat_problems(texts, repeats, parent.id if parent else None,
                                           self.config.degenerate_repeats)
                if not problems:
                    self.repaired += attempt > 0
                    return new, None
            if attempt < self.config.repair_attempts:
                if parent is not None and not self._budget_left():
                    break
                messages = prompts.repair(messages, completion.text, problems, exactly,
                                          others_listed=self.config.decompose_others == "listed")
        best = max(answers, key=len, default=[])
        if parent is not None and not best:
            sampled = await self._candidates(original, parent)
            if sampled:
                return sampled, None
        return best, "; ".join(problems)

    async def _candidates(self, messages: list[Message], parent: Rubric) -> list[str]:
        """Sampled answers to the original decomposition request (RefineConfig.decompose_candidates - 1 of
        them, one at a time): the first with a child that is not a repeat wins. A greedy small model gives the
        same wrong answer however often it is asked; a sample at temperature often does not."""
        for k in range(1, self.config.decompose_candidates):
            if not self._budget_left():
                break
            completion = await self.ask("candidate", messages, self.config.proposer_max_tokens, parent, candidate=k)
            self.candidates += 1
            if not completion.ok:
                return []
            texts = prompts.parse_rubric_list(completion.text, exactly=2)
            if texts is None:
                continue
            new, repeats = self._screen(texts)
            self._drop(repeats, parent, 0)
            if new:
                self.candidate_wins += 1
                parent.note(f"sampled candidate {k} of {self.config.decompose_candidates - 1} gave "
                            f"{len(new)} new rubric(s)")
                return new
        return []

    def _screen(self, texts: Sequence[str]) -> tuple[list[str], list[tuple[int, str, Match]]]:
        """Split one answer into new rubrics and repeats (position, text, what it repeats: a queued rubric or
        an earlier one of the same answer)."""
        new: list[str] = []
        repeats: list[tuple[int, str, Match]] = []
        for i, text in enumerate(texts):
            m = self.index.match(text, [Reference(t, SIBLING) for t in new])
            if m is None:
                new.append(text)
            else:
                repeats.append((i, text, m))
        return new, repeats

    def _drop(self, repeats: Sequence[tuple[int, str, Match]], parent: Rubric | None, attempt: int,
              origin: Origin | None = None) -> None:
        """Record each repeat in the tree, once, as dropped: no judge call, no rejection counted."""
        origin = origin or ("decomposed" if parent is not None else "initial")
        for _, text, m in repeats:
            r = Rubric.new(text, parent=parent, origin=origin, taken=self.taken)
            r.status, r.reason, r.similarity = "dropped", m.kind, m.score  # type: ignore[assignment]
            r.note(f"{'same text as' if m.kind == 'duplicate' else f'similarity {m.score:.0f} to'} "
                   f"{describe_repeat(m, parent.id if parent else None)}"
                   + (f" (repair attempt {attempt})" if attempt else ""))
            self.tree.append(r)
            self.dropped += 1

    # -- Stage 1 ----------------------------------------------------------------------------------------------
    async def initial(self, provided: Sequence[str] | None = None) -> str | None:
        """Queue the initial rubrics (the caller's, else the proposer's); a failure message when there are none."""
        if provided is not None:
            new, repeats = self._screen([t.strip() for t in provided if t and t.strip()])
            self._drop(repeats, None, 0, origin="provided")
            for text in new:
                self._enqueue(Rubric.new(text, origin="provided", taken=self.taken), front=False)
            return None if new else "no initial rubrics were provided"
        mode = "joint" if self.config.initial_source == "prompt_only" else self.config.initial_mode
        texts: list[str] = []
        problem: str | None = None
        joint: list[Message] = []
        if mode in ("joint", "union"):
            if self.config.initial_source == "prompt_only":
                joint = prompts.initial_rubrics_prompt_only(self.prompt)
            else:
                joint = prompts.initial_rubrics(self.prompt, [s.text for s in self.samples])
        per_sample = [prompts.initial_rubrics_one(self.prompt, s.text) for s in self.samples
                      ] if mode in ("per_sample", "union") else []
        # The joint list and the per-sample lists in one batch: a local model decodes them together
        self.report("initial" if joint else "initial per sample")
        params = self._params(self.config.proposer_max_tokens)
        with self.meter.timed("initial"):
            answers = await self.proposer.generate_many([(m, params) for m in ([joint] if joint else []) + per_sample])
        for completion in answers:
            self.meter.completion("initial", completion)
        if joint:
            texts, problem = await self._propose("initial", joint, None, first=answers[0])
        if per_sample:
            texts += self._per_sample_initial(texts, answers[1:] if joint else answers)
        if not texts:
            return f"no usable initial rubrics: {problem}"
        if problem:
            self.errors.append(f"initial rubrics still unusable after {self.config.repair_attempts} repair(s) "
                               f"({problem}); kept the {len(texts)} distinct ones")
        for text in texts:
            self._enqueue(Rubric.new(text, origin="initial", taken=self.taken), front=False)
        return None

    def _per_sample_initial(self, earlier: Sequence[str], answers: Sequence[Completion]) -> list[str]:
        """The rubrics in the per-sample initial lists (RefineConfig.initial_mode) that repeat nothing before
        them, `earlier` (the joint list) included. Unreadable lists are skipped: the union is only as good as the
        lists that can be read, and a re-ask would cost a call per sample."""
        new: list[str] = []
        for n, completion in enumerate(answers):
            texts = prompts.parse_rubric_list(completion.text) if completion.ok else None
            if texts is None:
                self.errors.append(f"initial list of sample {n + 1} unusable: "
                                   f"{completion.error or repr(completion.text[:120])}")
                continue
            fresh, repeats = self._screen([*earlier, *new, *texts])
            self._drop([x for x in repeats if x[0] >= len(earlier) + len(new)], None, 0)
            new += fresh[len(earlier) + len(new):]
        return new

    def _enqueue(self, r: Rubric, front: bool) -> None:
        self.tree.append(r)
        self.index.add(r.text, r.id)
        if front:
            self.queue.appendleft(r)
        else:
            self.queue.append(r)

    # -- Stage 2 ----------------------------------------------------------------------------------------------
    async def loop(self) -> str:
        """Process the queue; returns why it stopped."""
        c = self.config
        while self.queue:
            if self.rejections >= c.max_rejections:
                self._leave_pending(f"not processed: rejection budget T={c.max_rejections} reached")
                return "rejection_budget"
            if self.processed >= c.max_queue:
                self._leave_pending(f"not processed: max_queue={c.max_queue} rubrics processed")
                return "max_queue"
            r = self.queue[0]
            if r.id not in self.graded:
                await self._grade_wave()
                continue
            self.queue.popleft()
            self.processed += 1
            await self._decide(r)
            self.report("deciding")
        return "queue_empty"

    def _leave_pending(self, why: str) -> None:
        for r in self.queue:
            r.note(why)

    async def _grade_wave(self) -> None:
        """Grade every queued rubric that is not graded yet in one batch (repeats never reach the queue)."""
        targets = [r for r in self.queue if r.id not in self.graded]
        self.report(f"grading {len(targets)}")
        responses = [s.text for s in self.samples]
        with_refs = self.config.misalignment and len(self.refs) == 2
        if with_refs:
            responses += [self.refs["strong"].text, self.refs["weak"].text]
        criteria = [r.text for r in targets]
        with self.meter.timed("grading"):
            rows = await self.judge.grade_many([GradeItem(criteria, resp, self.prompt) for resp in responses])
        self.waves += 1
        shares = self.judge.call_shares(len(criteria))
        n = len(self.samples)
        for k, r in enumerate(targets):
            column: list[Verdict] = [row[k] for row in rows]
            r.verdicts = [v.met for v in column[:n]]
            r.p_yes = [None if (p := verdict_value(v, soft=True)) is None else float(p) for v in column[:n]]
            for v in column:
                r.judge_calls += self.meter.add("grading", v.cached, v.failed, v.usage, shares[k])
            unscored = sum(1 for v in r.verdicts if v is None)
            if unscored:
                r.note(f"{unscored} of {n} sample verdicts unscored (not counted as YES)")
            if with_refs:
                r.strong, r.weak = column[n].met, column[n + 1].met
            self.graded.add(r.id)

    async def _decide(self, r: Rubric) -> None:
        c = self.config
        count = self._count(r)
        if c.decompose and count > c.satisfy_threshold:
            if r.depth < c.max_depth:
                if await self._decompose(r):
                    return
            else:
                r.note(f"too coarse (c={self._c(r)} > n={c.satisfy_threshold}) at depth cap {c.max_depth}: "
                       "not decomposed")
        if r.status == "rejected":
            return
        if c.misalignment:
            if len(self.refs) < 2:
                r.note("misalignment check skipped: no reference responses")
            elif r.weak is True and r.strong is False:
                self._reject(r, "misaligned", "weak reference satisfies it, strong reference does not")
                return
            elif r.weak is None or r.strong is None:
                r.note("misalignment check unscored: kept")
        if c.overlap and self.accepted:
            hit = await self._check(r, "overlap", prompts.overlap_check, "overlaps")
            if hit is not None:
                self._reject(r, "overlap", f"overlaps {hit.id}: {hit.text}")
                return
        if c.conflict and self.accepted:
            hit = await self._check(r, "conflict", prompts.conflict_check, "conflicts")
            if hit is not None:
                self._reject(r, "conflict", f"conflicts with {hit.id}: {hit.text}")
                return
        r.status = "accepted"
        self.accepted.append(r)

    def _count(self, r: Rubric) -> float:
        """c as RefineConfig.count_mode reads it: YES verdicts, or the sum of P(YES)."""
        count = r.soft_satisfied if self.config.count_mode == "soft" else r.satisfied
        assert count is not None
        return count

    def _c(self, r: Rubric) -> str:
        return f"{self._count(r):.2f}" if self.config.count_mode == "soft" else str(r.satisfied)

    def _split(self, r: Rubric) -> list[str]:
        """The splitter's children of r that repeat nothing (rrd.split); [] when r is not compound."""
        parts = split_compound(r.text)
        if not parts:
            return []
        new, repeats = self._screen(parts)
        self._drop(repeats, r, 0, origin="split")
        return new

    async def _decompose(self, r: Rubric) -> bool:
        """Replace r by its new children (True), or handle a failed decomposition: r rejected, or kept to go on
        to the filters as if atomic (False). With RefineConfig.split_compound the children of a compound rubric
        come from the splitter, before or after the proposer is asked. Once RefineConfig.max_decompose_calls
        proposer calls are spent, only the splitter is tried, and a rubric it cannot split goes on to the
        filters as at the depth cap (False, not a failure)."""
        mode = self.config.split_compound
        texts = self._split(r) if mode == "first" else []
        origin = "split" if texts else "decomposed"
        problem = None
        asked = not texts and self._budget_left()
        if asked:
            satisfying = ([s.text for s, v in zip(self.samples, r.verdicts) if v is True]
                          or [s.text for s in self.samples])  # a soft count can exceed n with no hard YES
            others = ([x.text for x in self.accepted] + [x.text for x in self.queue]
                      if self.config.decompose_others == "listed" else None)
            messages = prompts.decompose(self.prompt, r.text, satisfying, others, self.config.decompose_prompt)
            texts, problem = await self._propose("decompose", messages, r)
        if not texts and mode == "fallback":
            texts = self._split(r)
            origin, problem = ("split", None) if texts else (origin, problem)
        n = self.config.satisfy_threshold
        if texts:
            self.splits += origin == "split"
            children = [Rubric.new(t, parent=r, origin=origin, taken=self.taken) for t in texts]  # type: ignore[arg-type]
            r.status = "decomposed"
            r.children = [ch.id for ch in children]
            how = "split by its syntax" if origin == "split" else "decomposed"
            r.note(f"c={self._c(r)} > n={n}: {how}" + (f" into 1 new rubric ({problem})" if problem else ""))
            front = self.config.children_position == "front"
            for ch in reversed(children) if front else children:
                self._enqueue(ch, front=front)
            return True
        if not asked:  # like the depth cap: the rubric goes on to the filters, and nothing failed
            self.over_budget += 1
            r.note(f"too coarse (c={self._c(r)} > n={n}) but the decomposition budget "
                   f"({self.config.max_decompose_calls} proposer calls) is spent: not decomposed")
            return False
        self.failed_decompositions += 1
        why = (f"c={self._c(r)} > n={n} but decomposition failed after {self.config.repair_attempts} repair(s): "
               f"{problem}")
        if self.config.on_failed_decomposition == "reject":
            self._reject(r, "failed_decomposition", why)
        else:
            self.kept_atomic += 1
            r.note(f"{why}; kept as atomic")
        return False

    async def _check(self, r: Rubric, stage: str, template: _CheckTemplate, key: str) -> Rubric | None:
        """The accepted rubric an overlap/conflict check names, or None (also when unreadable). With
        RefineConfig.check_orders "both" or "moved", a named rubric must be named again when A is listed in
        another order (reversed, or with the named rubric moved to the other end)."""
        hit = await self._ask_check(r, stage, template, key, self.accepted)
        mode = self.config.check_orders
        if hit is None or mode == "one" or len(self.accepted) < 2:
            return hit
        order, how = ((self.accepted[::-1], "the accepted list reversed") if mode == "both" else
                      moved_to_other_end(self.accepted, self.accepted.index(hit)))
        again = await self._ask_check(r, stage, template, key, order)
        if again is not hit:
            self.unconfirmed_checks += 1
            r.note(f"{stage} with {hit.id} not confirmed with {how} "
                   f"({'named ' + again.id if again else 'none named'}): treated as no {stage}")
            return None
        return hit

    async def _ask_check(self, r: Rubric, stage: str, template: _CheckTemplate, key: str,
                         accepted: Sequence[Rubric]) -> Rubric | None:
        """One overlap/conflict call against `accepted`, in that order."""
        messages = template(r.text, [a.text for a in accepted])
        # the JSON answer's fixed opening, which a local engine then evaluates instead of decoding token by token;
        # the answer ends at its closing brace (not a decoded end-of-turn token later), or before it once its value
        # is whole: every decoded token costs a forward pass on a CPU
        completion = await self.ask(stage, messages, self.config.check_max_tokens, r, answer_prefix=f'{{"{key}":',
                                    stop=("}",), final_words=prompts.whole_check_answers(len(accepted)))
        if not completion.ok:
            r.note(f"{stage} check failed ({completion.error}): treated as no {stage}")
            return None
        readable, index = prompts.parse_index(completion.text + "}", key, len(accepted))
        if not readable:
            r.note(f"unparseable {stage} check: treated as no {stage} ({completion.text[:120]!r})")
            return None
        return accepted[index] if index is not None else None

    def _reject(self, r: Rubric, reason: Reason, detail: str) -> None:
        r.status = "rejected"
        r.reason = reason
        r.note(detail)
        if reason == "overlap" and r.origin == "initial" and self.config.initial_mode != "joint":
            # N initial lists, one per sample, restate each other by construction: an initial rubric that
            # overlaps an accepted one is a repeat in other words and, like the repeats dropped before grading,
            # does not spend T (else the paraphrases would end the loop before any child is processed)
            self.initial_overlaps += 1
            r.note("a repeat across the initial lists: does not count towards T")
            return
        self.rejections += 1

    def fall_back(self, stopped: str) -> str | None:
        """With nothing accepted, use the initial rubrics that passed the misalignment check (all initial ones
        if none did), so an empty set never silently turns a pair into a coin flip. Returns why, or None."""
        if self.accepted or self.config.fallback == "none":
            return None
        initial = [r for r in self.tree if r.origin in ("initial", "provided") and r.status != "dropped" and r.verdicts]
        if not initial:
            return None
        aligned = [r for r in initial if not (r.weak is True and r.strong is False)]
        self.accepted = aligned or initial
        for r in self.accepted:
            r.note("in the set as a fallback")
        which = "that passed the misalignment check" if aligned else "(none passed the misalignment check)"
        return f"no rubric accepted (stopped: {stopped}); fell back to the {len(self.accepted)} initial rubrics {which}"


def _snapshot(config: RefineConfig, judge: Judge, proposer: Judge) -> dict[str, Any]:
    """What determines the result besides the prompt: goes into the content hash."""
    return {
        "refine": config.to_dict(),
        "judge": {
            "model": judge.config.model,
            "engine": judge.cache_id,  # e.g. local:NAME@llama.cpp: the same name on two engines answers differently
            "grading_mode": judge.config.grading_mode,
            "batch_size": judge.config.batch_size,
            "include_prompt": judge.config.include_prompt,
        },
        "proposer": proposer.config.model,
        "proposer_engine": proposer.cache_id,
        "template_version": prompts.TEMPLATE_VERSION,
    }


# ---------------------------------------------------------------------------------- Stage 3: the weights
Ask = Callable[[list[Message], int], Awaitable[Completion]]


def moved_to_other_end(items: Sequence[Rubric], k: int) -> tuple[list[Rubric], str]:
    """`items` with items[k] moved to the end if it sits in the first half, else to the front (so a checker that
    prefers either end is tested), and the others in their order; and how, in words."""
    rest = [x for i, x in enumerate(items) if i != k]
    if k < len(items) / 2:
        return [*rest, items[k]], "it listed last"
    return [items[k], *rest], "it listed first"


async def accepted_weights(prompt: str, accepted: Sequence[Rubric], config: RefineConfig,
                           ask: Ask) -> tuple[list[float], str, str | None]:
    """(weights, scheme actually used, note) over the accepted rubrics; `ask(messages, max_tokens)` is the
    proposer call the "llm" scheme makes (an unreadable answer falls back to uniform, with the reason)."""
    m = len(accepted)
    if m == 0:
        return [], config.weight_scheme, "no accepted rubrics"
    scheme = config.weight_scheme
    if scheme == "uniform":
        return uniform_weights(m).tolist(), "uniform", None
    if scheme == "llm":
        completion = await ask(prompts.importance_weights(prompt, [r.text for r in accepted]),
                               config.check_max_tokens + 8 * m)
        scores = prompts.parse_scores(completion.text, m) if completion.ok else None
        if scores is None:
            why = completion.error or f"unparseable importance scores: {completion.text[:200]!r}"
            return uniform_weights(m).tolist(), "uniform", f"llm weights fell back to uniform: {why}"
        return llm_weights(scores).tolist(), "llm", None
    X, missing = impute_unscored(list(zip(*(r.verdicts for r in accepted))), empty_fill=0.0)
    result = whitened_uniform_weights(X, config.whitening)
    notes = [n for n in (result.fallback_reason, f"{missing} unscored cells imputed" if missing else None) if n]
    return result.weights.tolist(), result.scheme, "; ".join(notes) or None


async def refine_prompt(
    prompt: str,
    judge: Judge,
    proposer: Judge,
    config: RefineConfig | None = None,
    *,
    prompt_id: str | None = None,
    responses: Sequence[str | Sample] | None = None,
    samplers: Mapping[str, Judge] | None = None,
    references: Mapping[str, str | Sample] | None = None,
    initial_rubrics: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> RubricSet:
    """Run RRD on one prompt and return its RubricSet (accepted rubrics, weights, full tree, provenance).

    judge grades rubric satisfaction; proposer writes, decomposes and filters rubrics (and samples responses
    when no samplers are configured). `responses` skips sampling (the user's own N responses); `samplers` maps
    model names in config.samplers to Judges (a missing name is built by rrd.pool.Models' rule and released after);
    `references` ({"strong": ..., "weak": ...}) skips generating the misalignment pair; `initial_rubrics`
    skips Stage 1 and refines the caller's rubrics instead (origin "provided"). `progress` is called with a
    Progress whenever the stage or the counts change.
    A failure before the loop (no samples, unreadable initial rubrics) returns an empty set with
    stopped="failed" and the reason in `failure`. BudgetExceeded propagates.
    """
    config = config or RefineConfig()
    t0 = time.monotonic()
    pool = Models(judge, proposer, dict(samplers or {}))
    meter = CallMeter()
    run = _Refinement(prompt, judge, proposer, config, meter, prompt_id, progress)
    stopped, failure, fallback = "failed", None, None
    try:
        run.report("sampling")
        with meter.timed("sampling"):  # the samples and the references, drawn together: one stage's time
            drawn = await draw(prompt, config, pool, samples=responses is None,
                               references=config.misalignment and references is None, record=meter.completion)
        run.samples = provided_samples(responses) if responses is not None else drawn.samples
        if config.misalignment:
            run.refs = drawn.references if references is None else {
                k: v if isinstance(v, Sample) else Sample(v, "provided") for k, v in references.items()}
        run.errors += drawn.errors
        if not run.samples:
            failure = "no sampled responses to judge rubrics on"
        else:
            failure = await run.initial(initial_rubrics)
        if failure is None:
            stopped = await run.loop()
            fallback = run.fall_back(stopped)
            weights, scheme, note = await accepted_weights(prompt, run.accepted, config,
                                                           partial(run.ask, "weights", owner=None))
        else:
            weights, scheme, note = [], config.weight_scheme, None
    finally:
        await pool.aclose()
    stats: dict[str, Any] = meter.totals()
    stats.update(
        stages=meter.stages,
        processed=run.processed,
        rejections=run.rejections,
        waves=run.waves,
        dropped=run.dropped,
        repairs=run.repairs,
        repaired=run.repaired,
        failed_decompositions=run.failed_decompositions,
        kept_after_failed_decomposition=run.kept_atomic,
        splits=run.splits,
        candidates=run.candidates,
        candidate_wins=run.candidate_wins,
        decompose_calls=run.decompose_calls,
        over_budget=run.over_budget,
        initial_overlaps=run.initial_overlaps,
        unconfirmed_checks=run.unconfirmed_checks,
        errors=run.errors,
        elapsed_s=time.monotonic() - t0,
    )
    rs = RubricSet(
        prompt=prompt,
        prompt_id=prompt_id,
        rubrics=list(run.accepted),
        weights=weights,
        weight_scheme=scheme,
        weight_note=note,
        tree=run.tree,
        samples=run.samples,
        references=run.refs,
        config=_snapshot(config, judge, proposer),
        stats=stats,
        stopped=stopped,
        failure=failure,
        fallback=fallback,
    ).seal()
    run.report("done")
    return rs
