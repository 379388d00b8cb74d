"""RefineConfig: every knob of the RRD loop, with the paper's defaults (ours where the paper is silent).

One dataclass per entry point, nothing global: the CLI and YAML configs fill it, and a snapshot of it goes into
every RubricSet (and its content hash), so a rubric file always says how it was made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from judges.settings import COUNT, POSITIVE, number, setting, validate

from .weights import WhiteningConfig

def similarity_threshold(text: str) -> float | None:
    """An argparse type: a lexical similarity in (0, 100], or 'off'/'none' for exact repeats only."""
    import argparse

    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 100] or 'off', not {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 100] or 'off', not {text!r}")
    return value


def optional_count(text: str) -> int | None:
    """An argparse type: an integer >= 0, or 'none'/'off' for no limit."""
    return None if text.strip().lower() in ("off", "none") else int(COUNT(text))


InitialSource = Literal["responses", "prompt_only"]
WeightScheme = Literal["uniform", "llm", "whitened"]
ChildrenPosition = Literal["back", "front"]
OnFailedDecomposition = Literal["keep", "reject"]
Fallback = Literal["initial", "none"]
SplitMode = Literal["off", "first", "fallback"]
DecomposePrompt = Literal["plain", "contrastive"]
DecomposeOthers = Literal["listed", "hidden"]
InitialMode = Literal["joint", "per_sample", "union"]
CountMode = Literal["hard", "soft"]
CheckOrders = Literal["one", "both", "moved"]


@dataclass
class RefineConfig:
    """Settings of one RRD refinement (method page, Stages 1-3).

    Sampling (Stage 1 inputs). The paper samples 8 responses, 4 from each of two strong models, at temperature
    0.7 / top_p 0.95. `samplers` names the models; empty means "sample from the proposer". The N samples are
    split evenly over the samplers (earlier samplers take the remainder) unless `samples_per_sampler` is set,
    in which case every sampler gives that many and the total is samples_per_sampler x len(samplers)
    (`n_samples` is then ignored).

    Misalignment references. The paper judges each rubric on "one response from a strong model and one from a
    weak model" without saying how they are produced. Our defaults: strong = `strong_model` if given, else the
    first sampler (the proposer when there are none), at temperature 0; weak = `weak_model` at temperature 0 if
    given, else the proposer instructed to write a brief, low-effort answer (prompts.WEAK_INSTRUCTION).

    Loop. Decompose when c > satisfy_threshold (c = YES count over the N samples) and depth < max_depth
    (initial rubrics have depth 0, so max_depth=3 allows children down to depth 3). A rubric that is too coarse
    at the cap is not decomposed; it goes on to the filters and is accepted if it passes them (its `detail`
    says it was capped). The loop stops when the queue is empty, when `max_rejections` (T) rejections have been
    made, or after `max_queue` rubrics have been processed (a safety cap the paper does not need). Children go
    to the back of the queue by default (breadth-first: all children of one wave are graded in one concurrent
    batch); "front" refines one rubric's subtree before moving on.

    Stage switches (`decompose`, `misalignment`, `overlap`, `conflict`) exist for ablations; all on by default.
    With `decompose` off, coarse rubrics go straight to the filters.

    Robustness (ours; the paper's GPT-4o proposer rarely needs it, small open proposers do):
    - Repeats are caught before any judge call: a rubric whose canonical text (markup, punctuation, case and
      whitespace removed) equals, or whose lexical similarity reaches `near_duplicate_threshold` (0-100,
      rrd.dedup: the lower of rapidfuzz's token-sort ratio and the word overlap; None = exact only) to, the
      parent, its sibling or any rubric already queued, accepted or processed is dropped (status "dropped",
      reason and score in the tree). Drops do not count towards T, which bounds rejections of distinct candidates.
    - A proposer answer that cannot be read, whose children all repeat existing rubrics, or (initial list)
      that repeats one rubric `degenerate_repeats` or more times, is re-asked with precise feedback up to
      `repair_attempts` times.
    - A parent whose decomposition still fails is rejected as the paper does (`on_failed_decomposition=
      "reject"`, the default: on JudgeBench it matched "keep" in accuracy at 60% of the calls, see
      docs/results/judgebench_robust), or kept and sent to the filters as if atomic ("keep", as at the depth cap).
    - `fallback="initial"`: when the loop accepts nothing, the set falls back to the initial rubrics that
      passed the misalignment check (all initial rubrics if none did), recorded in RubricSet.fallback.
    - Richer sets with a small proposer (the local profile turns these on; the dataclass defaults are the
      paper's, docs/method-deviations.md has the measurements): `split_compound` splits a coarse compound rubric
      ("X and Y", lists, "including ...") by its syntax (rrd.split) before ("first") or after ("fallback") the
      proposer is asked; `decompose_prompt="contrastive"` asks what concrete thing the best satisfying
      response includes that the others lack; `decompose_others="hidden"` leaves the other rubrics in use out
      of that request (a small proposer copies from the list: every failed decomposition on 20 WildBench prompts
      held such a copy); `decompose_candidates` > 1 draws further sampled answers (at
      `candidate_temperature`) when the greedy answer and its repairs give no new child, keeping the first that
      survives de-duplication; `initial_mode` "per_sample" writes the initial list from each sample on its own
      and "union" adds those lists to the joint one. `count_mode="soft"` counts c as the sum of P(YES) instead
      of the YES verdicts when deciding to decompose.
    - `check_orders="both"` (and "moved", the local profile's): an overlap or conflict check that names an accepted rubric is asked again with the
      accepted list in reverse order, and the rubric is rejected only if the same accepted rubric is named both
      times. The 1.5B checker named the first accepted rubric in 380 of 392 overlap rejections on HH-RLHF
      (docs/method-deviations.md): a position preference, not a judgment, and it rejected most initial rubrics.
      `check_orders="moved"` asks again with only the named rubric moved, to the end of the list if it sat in
      the first half, else to the front: the others keep their order, so the re-asked list shares its prefix
      with the re-asks before it, which a local engine then does not evaluate again (a reversed list changes
      from its first rubric on whenever A grows).
    - `max_decompose_calls` bounds what a prompt costs: once that many proposer calls went to decompositions
      (answers, repairs, candidates), only the splitter is tried, and a coarse rubric it cannot split goes on to
      the filters as at the depth cap. A proposer call carries the prompt and the satisfying samples, so on a
      CPU these calls, not the gradings, set a refine's wall time.
    - `proposer_repetition_penalty` (1.0 = off) is sent with proposer calls to backends that take one (the
      local backend, OpenAI-compatible servers given by api_base); it breaks the decoding loops of small models.
    """

    # -- responses ----------------------------------------------------------------------------------------------
    n_samples: int = setting(8, type=POSITIVE, help="sampled responses per prompt (N)")
    samplers: list[str] = setting(default_factory=list, help="models that write the N sampled responses "
                                                             "(default: the proposer)")
    samples_per_sampler: int | None = setting(None, type=POSITIVE, help="every sampler writes this many "
                                                                        "(ignores --n-samples)")
    sample_temperature: float = setting(0.7, type=number(float), help="temperature of sampled responses")
    sample_top_p: float = setting(0.95, type=number(float, strict=True), help="top_p of sampled responses")
    sample_max_tokens: int = setting(1024, type=POSITIVE, also=("reference_max_tokens",),
                                     help="length cap of sampled and reference responses")
    # -- misalignment references ----------------------------------------------------------------------------
    strong_model: str | None = setting(None, help="misalignment check: the strong reference")
    weak_model: str | None = setting(None, help="misalignment check: the weak reference")
    reference_max_tokens: int = setting(1024, type=POSITIVE, help="length cap of the reference responses "
                                                                  "(default: --sample-max-tokens)")
    # -- the loop -------------------------------------------------------------------------------------------
    satisfy_threshold: int = setting(2, flag="--threshold", type=COUNT,
                                     help="decompose a rubric when more than this many samples satisfy it")
    max_rejections: int = setting(15, type=POSITIVE, help="rejection budget T")
    max_depth: int = setting(3, type=COUNT, help="deepest decomposition (initial rubrics have depth 0)")
    max_queue: int = setting(200, type=POSITIVE, help="safety cap on rubrics processed per prompt")
    children_position: ChildrenPosition = setting("back", help="back: breadth-first (one grading wave per "
                                                               "level); front: one subtree at a time")
    decompose: bool = setting(True, flag="--no-decompose", negate=True, help="ablation: switch the decompose "
                                                                             "stage off")
    misalignment: bool = setting(True, flag="--no-misalignment", negate=True,
                                 help="ablation: switch the misalignment stage off")
    overlap: bool = setting(True, flag="--no-overlap", negate=True, help="ablation: switch the overlap stage off")
    conflict: bool = setting(True, flag="--no-conflict", negate=True,
                             help="ablation: switch the conflict stage off")
    initial_source: InitialSource = setting("responses", flag="--initial",
                                            help="what the initial rubrics are written from")
    # -- robustness (see the docstring) ----------------------------------------------------------------------
    near_duplicate_threshold: float | None = setting(
        90.0, type=similarity_threshold,
        help="lexical similarity (0-100) from which a proposed rubric repeats an existing one and is dropped "
             "before grading; 'off' for exact (canonical) repeats only")
    repair_attempts: int = setting(1, type=COUNT, help="re-asks of the proposer, with feedback, after an "
                                                       "unreadable or repeating answer")
    degenerate_repeats: int = setting(3, type=number(int, minimum=2), help="an initial list repeating one rubric this "
                                                                 "many times is re-asked")
    on_failed_decomposition: OnFailedDecomposition = setting(
        "reject", help="keep: a parent that cannot be decomposed goes on to the filters as if atomic; reject: it "
                       "is rejected (the paper)")
    fallback: Fallback = setting("initial", help="initial: a loop that accepts nothing falls back to the initial "
                                                 "rubrics that passed the misalignment check; none: the set stays "
                                                 "empty (the paper)")
    split_compound: SplitMode = setting(
        "off", help="split a coarse compound rubric (X and Y, lists, including ...) by its syntax: first = "
                    "before asking the proposer, fallback = when the proposer fails, off = never (the paper)")
    decompose_prompt: DecomposePrompt = setting(
        "plain", help="plain: ask for two finer rubrics (the paper); contrastive: ask what the best satisfying "
                      "response does that the others do not")
    decompose_others: DecomposeOthers = setting(
        "listed", help="listed: a decomposition request lists the other current rubrics, not to be restated (the "
                       "paper); hidden: it shows only the rubric being refined (a small proposer copies from the "
                       "list; repeats are still dropped by the de-duplication index and the overlap check)")
    decompose_candidates: int = setting(1, type=POSITIVE,
                                        help="proposer answers tried per decomposition: the greedy one, then "
                                             "sampled ones until one gives a new child (1 = greedy only)")
    candidate_temperature: float = setting(0.7, type=number(float), help="temperature of the sampled "
                                                                         "decomposition candidates")
    max_decompose_calls: int | None = setting(
        None, type=optional_count, help="proposer calls a prompt may spend on decompositions (answers, repairs, sampled "
                               "candidates); once spent, a coarse rubric the splitter cannot split goes on to the "
                               "filters as at the depth cap ('none': no limit, the paper)")
    initial_mode: InitialMode = setting(
        "joint", help="joint: one initial list from all samples (the paper); per_sample: one list per sample, "
                      "their union; union: both")
    count_mode: CountMode = setting("hard", help="c, the satisfaction count that decides decomposition: hard = "
                                                 "YES verdicts (the paper), soft = the sum of P(YES)")
    check_orders: CheckOrders = setting(
        "one", help="one: an overlap/conflict check's answer stands (the paper); both: a rubric it names is asked "
                    "again with the accepted list reversed, and the claim stands only if the same rubric is named; "
                    "moved: the same, with only the named rubric moved to the other end of the list")
    # -- proposer calls ---------------------------------------------------------------------------------------
    proposer_temperature: float = setting(0.0, type=number(float), help="temperature of proposer calls")
    proposer_max_tokens: int = setting(1024, type=POSITIVE,
                                       help="length cap of the proposer's rubric lists and decompositions")
    check_max_tokens: int = setting(64, type=POSITIVE, help="length cap of the overlap and conflict checks")
    proposer_repetition_penalty: float = setting(
        1.1, type=number(float, strict=True),
        help="repetition penalty of proposer calls (local backend and api_base servers; 1.0 = off)")
    # -- weights ------------------------------------------------------------------------------------------------
    weight_scheme: WeightScheme = setting("whitened", flag="--weights", help="how accepted rubrics are weighted")
    whitening: WhiteningConfig = field(default_factory=WhiteningConfig)
    seed: int = setting(0, type=int, help="seed of sampling and weighting")

    def __post_init__(self) -> None:
        if isinstance(self.whitening, dict):
            self.whitening = WhiteningConfig(**self.whitening)
        self.samplers = list(self.samplers)
        validate(self)  # the flags' checks, on the values (judges.settings)

    def sample_plan(self, names: list[str]) -> list[tuple[str, int]]:
        """How many samples each sampler writes, in sampler order."""
        if self.samples_per_sampler is not None:
            return [(m, self.samples_per_sampler) for m in names]
        base, extra = divmod(self.n_samples, len(names))
        return [(m, base + (1 if i < extra else 0)) for i, m in enumerate(names) if base + (i < extra) > 0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Profile = Literal["paper", "local"]

#: Named starting points for RefineConfig; explicit settings override them. "paper" is the paper's protocol (the
#: dataclass defaults), sized for API models. "local" is sized for a small model on a CPU, where every sampled
#: token costs tens of milliseconds: half the samples (4, and the decompose threshold scaled with them: a rubric
#: is split when at least 2 of 4 samples satisfy it, against 3 of 8), and answers, references and proposer
#: lists capped at 512 tokens; the mechanisms that keep a small proposer's sets rich (the splitter, contrastive
#: decomposition without the list of rubrics in use, which a small proposer copies, per-sample initial lists);
#: and a bound on what a prompt costs: at most 4 proposer calls on decompositions, no repair turns and no sampled
#: candidates (each costs what a decomposition of another rubric costs and pays less often,
#: docs/method-deviations.md), and a rubric that cannot be decomposed kept for the
#: filters instead of rejected; overlap and conflict claims confirmed with the named rubric moved to the other end
#: of the list (a small checker prefers a position; moving one rubric keeps the list's prefix for the engine). It trades a coarser satisfaction count (and WU weights estimated from 4 samples, with
#: more shrinkage) and truncated long answers for a refine several times faster; see docs/results/README.md.
PROFILES: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "paper": MappingProxyType({}),
    "local": MappingProxyType({
        "n_samples": 4,
        "satisfy_threshold": 1,
        "sample_max_tokens": 512,
        "reference_max_tokens": 512,
        "proposer_max_tokens": 512,
        "split_compound": "first",
        "decompose_prompt": "contrastive",
        "decompose_others": "hidden",
        "initial_mode": "union",
        "repair_attempts": 0,
        "max_decompose_calls": 4,
        "on_failed_decomposition": "keep",
        "check_orders": "moved",
    }),
})


def auto_profile(models: Iterable[str]) -> Profile:
    """"local" when every model that writes or grades (proposer, samplers, references, judge) is a `local:`
    model, else "paper": one API model in the mix means the paper's settings are affordable."""
    return "local" if all(m.startswith("local:") for m in models) else "paper"


def profile_config(profile: str, **overrides: Any) -> RefineConfig:
    """RefineConfig of a profile with `overrides` (explicit settings) on top."""
    return RefineConfig(**profile_settings(profile, overrides))


def resolve_profile(profile: str, judge: str, proposer: str | None, settings: Mapping[str, Any]) -> str:
    """`profile` with "auto" resolved from the models that write and grade: the judge, the proposer, and the
    samplers and references that `settings` (the explicit refine settings) name. One rule for every command and
    for `rrd train`'s refine section."""
    if profile != "auto":
        return profile
    models = [judge, proposer or judge, *settings.get("samplers", []), settings.get("strong_model"),
              settings.get("weak_model")]
    return auto_profile([m for m in models if m])


def profile_settings(profile: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A profile's settings with `overrides` on top, as a mapping (for callers that validate it themselves)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {sorted(PROFILES)} or auto")
    return {**PROFILES[profile], **overrides}
