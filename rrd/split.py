"""A deterministic splitter for compound rubrics: "The response X and Y" becomes "The response X" and "The
response Y", with no proposer call.

Why: a small proposer asked to decompose a rubric mostly hands back the rubric itself (docs/results/judgebench:
127 of 135 rejections were repeats). Many coarse rubrics are coarse because they are compound (two checks joined
by "and", a list, "including ..."), and those can be split by their syntax alone. The children are ordinary
children: they are graded, decomposed again when still coarse, and face every filter, so a bad split costs
grading calls, never a wrong verdict.

The rules are deliberately conservative, and the splitter returns None whenever a rubric does not clearly
parse as a coordination:
- only "and", "as well as", "along with", "plus" and ";" coordinate; "or" never does (a disjunction is one check);
- nothing inside parentheses, quotes, brackets or $...$ is split;
- conditions ("If ...", "When ...", "Unless ...") and ranges ("between X and Y") are left alone; "both X and Y"
  drops the "both";
- a list item that is a clause (starts with a verb, or with its own subject) keeps the rubric's subject; an item
  that is a noun phrase keeps the first conjunct's verb and everything before its object ("mentions the
  boiling point and the effect of altitude" -> "mentions the boiling point", "mentions the effect of altitude"),
  and only when that object has one possible start: "uses examples to illustrate the concept of X and its
  role" is left alone ("its role" could be what it uses or what it illustrates).
"""

from __future__ import annotations

import re
from typing import Sequence

#: a rubric's subject: "The response", "The final answer", "The assistant's reply", ...
_SUBJECT = re.compile(
    r"^(?P<subject>(?:the|a|each|every|this)\s+(?:\w+\s+){0,2}?(?:response|answer|reply|output|solution|"
    r"explanation|code|essay|summary|story|poem|email|letter|message|text)(?:'s\s+\w+)?)\s+",
    re.IGNORECASE,
)
_CONDITION = re.compile(r"^\s*(?:if|when|whenever|unless|whether|in case|for any|for each)\b", re.IGNORECASE)
_LIST_MARKER = re.compile(r"(?:,\s*|\s+)(?:including|such as|namely|for example|e\.g\.,?|i\.e\.,?)\s+|:\s+",
                          re.IGNORECASE)
_COORDINATOR = re.compile(r",?\s+(?:and also|as well as|along with|and|plus)\s+|\s*;\s*", re.IGNORECASE)
_PROTECTED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\"[^\"]*\"|“[^”]*”|'[^']*'|`[^`]*`|\$[^$]*\$")

_DETERMINERS = {
    "the", "a", "an", "its", "their", "his", "her", "our", "your", "this", "that", "these", "those", "each",
    "every", "any", "all", "some", "no", "both", "one", "two", "three", "four", "five", "several", "many",
}
_PREPOSITIONS = {"of", "in", "on", "for", "to", "with", "about", "by", "from", "at", "into", "over", "under",
                 "without", "against", "between", "through", "within", "across", "before", "after"}
#: third-person verbs rubrics are written with; with the adverbs that precede them and the auxiliaries
_VERBS = {
    "is", "are", "has", "have", "does", "do", "can", "must", "should", "will", "was", "remains", "stays",
    "explains", "states", "mentions", "provides", "includes", "identifies", "gives", "lists", "describes",
    "uses", "avoids", "addresses", "acknowledges", "offers", "notes", "recommends", "suggests", "defines",
    "contains", "cites", "answers", "follows", "keeps", "presents", "discusses", "compares", "clarifies",
    "specifies", "shows", "demonstrates", "justifies", "derives", "computes", "calculates", "reaches",
    "arrives", "concludes", "ends", "starts", "begins", "refuses", "declines", "warns", "asks", "encourages",
    "emphasizes", "emphasises", "highlights", "distinguishes", "considers", "covers", "ensures", "maintains",
    "supports", "outlines", "summarizes", "summarises", "organizes", "organises", "structures", "writes",
    "produces", "returns", "handles", "checks", "verifies", "validates", "corrects", "responds", "refers",
    "links", "connects", "relates", "attributes", "quantifies", "estimates", "predicts", "proposes",
    "recognizes", "recognises", "admits", "expresses", "conveys", "matches", "meets", "satisfies", "respects",
    "adheres", "complies", "refrains", "points", "sets", "puts", "makes", "takes", "offers", "advises",
    "directs", "redirects", "prioritizes", "prioritises", "evaluates", "analyzes", "analyses", "interprets",
    "translates", "converts", "formats", "labels", "names", "breaks", "walks", "steps", "illustrates",
}
#: adverbs that may precede a clause's verb ("and also gives", "and does not", "and never claims")
_ADVERBS = {"correctly", "clearly", "explicitly", "accurately", "briefly", "directly", "also", "not", "never",
            "then", "still", "always", "only"}
_MODALS = {"should", "must", "can", "could", "will", "would", "may", "might", "shall"}
#: words that open an embedded clause: a noun phrase coordinated after one belongs to that clause
_WH = {"why", "how", "what", "which", "who", "whom", "whose", "where", "when", "whether"}
#: words that never start a conjunct of their own: splitting there would cut a phrase in half
_NO_SPLIT_BEFORE = {"then", "so", "thus", "therefore", "hence", "yet", "but", "or"}


def _protect(text: str) -> tuple[str, list[str]]:
    """Replace protected spans by placeholders so their "and"s and commas are never split."""
    spans: list[str] = []

    def keep(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return f"\x00{len(spans) - 1}\x00"

    previous = None
    while previous != text:  # nested brackets: innermost first
        previous, text = text, _PROTECTED.sub(keep, text)
    return text, spans


def _restore(text: str, spans: Sequence[str]) -> str:
    while "\x00" in text:
        restored = re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], text)
        if restored == text:
            break
        text = restored
    return text


def _conjuncts(text: str) -> list[str]:
    """Top-level coordinated parts of `text` ("A, B, and C" -> [A, B, C]); one part when it is not coordinated.
    Commas split only inside a list closed by a coordinator, and only between short items that start alike."""
    parts = [p.strip(" ,") for p in _COORDINATOR.split(text)]
    if len(parts) < 2 or any(not p for p in parts):
        return [text]
    first, rest = parts[0], parts[1:]
    items = [i.strip() for i in first.split(",")]
    if len(items) > 1 and all(0 < len(i.split()) <= 6 for i in items[1:]):
        if len({_word_class(i.split()[0]) for i in [*items[1:], *rest]}) != 1:
            return [text]  # a list's items are parallel: in ", mentioning X and Y" it is unclear what is listed
        parts = [items[0], *items[1:], *rest]
    return parts


def _word_class(word: str) -> str:
    w = word.lower().strip(",.;:")
    if word[:1].isupper() and len(w) > 0 and w != "the":  # "A" and "B" in "mentions A and B" are names
        return "name"
    if w in _DETERMINERS:
        return "det"
    if w in _PREPOSITIONS:
        return "prep"
    if w.endswith("ing") and len(w) > 4:
        return "gerund"
    if w[:1].isdigit():
        return "number"
    if word[:1].isupper():
        return "name"
    return "word"


def _is_clause(part: str, modal: bool = False) -> bool:
    """A conjunct that carries its own verb (or subject), so it takes only the rubric's subject. After a modal
    ("should include X and ..."), a parallel verb is bare, so an -s word there ("steps") is a noun, not a verb."""
    words = part.split()
    if not words:
        return False
    first = words[0].lower()
    if first in ("it", "they") or _SUBJECT.match(part + " "):
        return True
    if modal:
        return False
    rest = [w.lower() for w in words]
    while rest and rest[0] in _ADVERBS:
        rest = rest[1:]
    return bool(rest) and rest[0] in _VERBS


def _head(first: str, item: str) -> str | None:
    """What a noun-phrase conjunct borrows from the first conjunct: its words up to where its object starts,
    found as the one word (after the verb) of the same kind as the conjunct's first word. None when that place
    is ambiguous: two or more such words ("uses specific examples to illustrate the concept of X and its role":
    "its" could pair with "specific examples" or with "the concept"), or none at all."""
    words = first.split()
    target = _word_class(item.split()[0])
    places = [i for i in range(1, len(words)) if _word_class(words[i]) == target]
    if places and any(w.lower().strip(",") in _WH for w in words[: places[0]]):
        return None  # "explains why Israel and Lebanon ...": the coordination is inside the embedded clause
    if not places and len(item.split()) == 1 and len(words) > 1:
        places = [len(words) - 1]  # one-word items of a list: "mentions cost, time and risk"
    return " ".join(words[:places[0]]) if len(places) == 1 else None


def _sentence(subject: str, predicate: str, period: str) -> str:
    text = f"{subject} {predicate}".strip() if subject else predicate.strip()
    text = re.sub(r"^(?:both|either)\s+", "", text, flags=re.IGNORECASE) if not subject else text
    text = text[0].upper() + text[1:] if text else text
    return text.rstrip(" ,;") + period


def split_compound(rubric: str, max_parts: int = 6) -> list[str] | None:
    """The conjuncts of a compound rubric as whole rubrics (2..max_parts of them, in order, distinct), or None
    when `rubric` is not clearly a coordination of separate checks."""
    text = " ".join(rubric.split())
    if not text or _CONDITION.match(text):
        return None
    period = "." if text.endswith(".") else ""
    text = text.rstrip(".")
    protected, spans = _protect(text)
    m = _SUBJECT.match(protected)
    subject = m.group("subject") if m else ""
    predicate = protected[m.end():] if m else protected
    if re.search(r"\bbetween\b[^,;]*\band\b", predicate, re.IGNORECASE):
        return None  # a range, "between 95 and 100 degrees"
    predicate = re.sub(r"\bboth\s+", "", predicate, count=1, flags=re.IGNORECASE)

    marker = _LIST_MARKER.search(predicate)
    children: list[str] = []
    if marker is not None:  # "lists precautions, including gloves and ventilation"
        head, tail = predicate[: marker.start()], predicate[marker.end():]
        items = _conjuncts(tail)
        if len(items) >= 2 and head.strip():
            lead = predicate[: marker.end()].rstrip()
            children = [f"{lead} {item}" for item in items]
    if not children:
        parts = _conjuncts(predicate)
        if len(parts) < 2:
            return None
        if any(p.split()[0].lower() in _NO_SPLIT_BEFORE for p in parts[1:]):
            return None
        first = parts[0]
        fw = first.split()
        modal = fw[0].lower() in _MODALS
        if (len(fw) >= 2 and _word_class(fw[-2]) == "det"
                and any(not _is_clause(p, modal) and _word_class(p.split()[0]) != "det" for p in parts[1:])):
            return None  # adjectives sharing a noun: "a clear and concise answer"
        if (len(fw) >= 2 and fw[-2].lower() in _VERBS
                and any(not _is_clause(p, modal) and len(p.split()) > 1
                        and _word_class(p.split()[0]) == _word_class(fw[-1]) for p in parts[1:])):
            return None  # the same with no determiner: "uses clear and concise language" is not "uses clear"
        for part in parts:
            if part is first or _is_clause(part, modal):
                children.append(re.sub(r"^(?:it|they)\s+", "", part, flags=re.IGNORECASE)
                                if subject else part)
                continue
            head = _head(first, part)
            if head is None:
                return None  # where the noun phrase attaches is a guess: leave the rubric to the proposer
            children.append(f"{head} {part}")
    out: list[str] = []
    for child in children[:max_parts]:
        own = _SUBJECT.match(child + " ")
        sentence = _sentence("" if own else subject, child, period)
        sentence = _restore(sentence, spans)
        if len(sentence.split()) >= 3 and sentence not in out:
            out.append(sentence)
    return out if len(out) >= 2 else None
