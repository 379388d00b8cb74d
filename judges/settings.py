"""Config dataclasses as the one source of truth for settings: their fields make the CLI flags and read YAML.

A setting is declared once, as a dataclass field with `setting(default, help=...)`; `add_config_args` turns
the fields of a config class into argparse flags (the flag name, its aliases, type, choices and help all come
from the field), `config_values` reads them back into field values, and `config_from_mapping` builds the same
class from a parsed YAML mapping, naming the file, section and key of anything it cannot use, and `validate` (run by
each config's __post_init__) makes the flags' checks on the values, so flags, YAML and library calls fail alike.

Why not transformers' HfArgumentParser (TRL's TrlParser), which also takes a list of dataclasses? Measured with
transformers 5.24: it passes a field's metadata to `add_argument` as keyword arguments, so a field cannot carry what
these flags need beyond argparse's own (an older flag name, a `--no-` switch, an environment default, shortcuts such
as `--hard`, a flag that sets a second field); two instances of one config in one parser (the judge's and the
proposer's JudgeConfig) fail with "conflicting option string: --model"; it cannot say which flags the user gave
(profiles fill in the rest); and it accepts `--concurrency 0`, as the dataclass does. The part it would save is
`add_config_args`, about 40 lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from dataclasses import MISSING, Field
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- value types
def number(kind: type = int, *, minimum: float = 0, strict: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of `kind` that is >= minimum (> minimum when strict), so a flag such as
    --concurrency 0 (which would wait forever) or --budget-usd -1 is refused before anything runs. The config
    types run the same parser on their field values (`validate`), so YAML and library users get the same error."""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} {bound}, "
                                             f"not {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):  # NaN and inf too
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, not {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def choice(values: Sequence[str]) -> Callable[[str], str]:
    """An argparse type for a Literal field: one of `values`. Its message is the one `validate` gives a config
    value, so a flag, a YAML key and a library call fail alike."""
    def parse(text: str) -> str:
        if text not in values:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(values)}, not {text!r}")
        return text

    parse.__name__ = "choice"
    return parse


POSITIVE = number(int, minimum=1)
COUNT = number(int, minimum=0)
SECONDS = number(float, minimum=0, strict=True)


# ------------------------------------------------------------------------------------------------ declaring
def setting(default: Any = MISSING, *, help: str, flag: str | None = None, aliases: Sequence[str] = (),
            type: Callable[[str], Any] | None = None, negate: bool = False, env: str | None = None,
            also: Sequence[str] = (), metavar: str | None = None, default_factory: Any = MISSING,
            shortcuts: Mapping[str, Any] | None = None) -> Any:
    """A dataclass field that is also a CLI flag.

    flag: the flag's name (default `--field-name`); aliases: older names that keep working. type: the argparse
    type (default: from the field's annotation; Literal fields get choices). negate: a True-by-default bool whose
    flag (`--no-...`) switches it off. env: an environment variable that gives the flag's default. also: fields
    the flag sets too unless they are given themselves (one `--sample-max-tokens` caps samples and references).
    shortcuts: flags that each set one value without an argument (`{"--hard": "hard"}` for `--score hard`).
    """
    meta = {"help": help, "flag": flag, "aliases": tuple(aliases), "type": type, "negate": negate, "env": env,
            "also": tuple(also), "metavar": metavar, "shortcuts": dict(shortcuts or {})}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_fields(cls: type) -> list[Field]:
    """The fields of `cls` declared with `setting` (those that have a flag)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def flag_name(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def flag_dest(f: Field) -> str:
    """Where argparse stores the flag: named after the flag, so `args.judge` is `--judge` whatever the field."""
    return flag_name(f).lstrip("-").replace("-", "_")


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _unwrap(hint: Any) -> Any:
    """The non-None type of an optional annotation (`int | None` -> int)."""
    if get_origin(hint) in (Union, types.UnionType):
        rest = [a for a in get_args(hint) if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def validate(config: Any) -> None:
    """The checks the flags make, made on a config's values (call it from __post_init__): every Literal field
    holds one of its values, and every `setting` field with a parser (`type=`) holds a value that parser accepts
    (None where the field is optional). A ValueError names the field and its flag; the problem is worded as the
    flag's error is, so `concurrency: 0` in YAML and `--concurrency 0` read the same."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints.get(f.name)
        optional = hint is not _unwrap(hint)
        if value is None and optional:
            continue
        parse = _parser(f, _unwrap(hint))
        if parse is None:
            continue
        try:
            parse(value if isinstance(value, str) else str(value))  # what the flag's text would be
        except (argparse.ArgumentTypeError, ValueError) as exc:
            where = f"{f.name} ({flag_name(f)})" if "help" in f.metadata else f.name
            raise ValueError(f"{where}: {exc}") from None


def _parser(f: Field, hint: Any) -> Callable[[str], Any] | None:
    """The parser that checks a field's value: its `type=` (setting fields), or the choices of a Literal."""
    if get_origin(hint) is Literal:
        return choice([str(a) for a in get_args(hint)])
    return f.metadata.get("type")


# ------------------------------------------------------------------------------------------------- the CLI
def add_config_args(group: Any, cls: type, *, unset: bool = False,
                    describe_default: Callable[[Field], str | None] | None = None, skip: Iterable[str] = ()) -> None:
    """One flag per `setting` field of `cls` on `group` (a parser or an argument group).

    unset: a flag the user does not give leaves no attribute (argparse.SUPPRESS), so `config_values` returns
    only what the user gave, None included (settings that a profile fills in otherwise). describe_default: the
    help's note on a field's default (by default "default X", where X is set and the help does not say). skip: fields
    that get no flag here (a command where they mean nothing, or one that puts them in another group)."""
    hints = typing.get_type_hints(cls)
    skip = set(skip)
    for f in (f for f in flag_fields(cls) if f.name not in skip):
        meta, hint, default = f.metadata, _unwrap(hints[f.name]), _default(f)
        if meta["env"] and os.environ.get(meta["env"]):
            default = os.environ[meta["env"]]
        if describe_default is not None:
            note = describe_default(f)
        else:
            empty = default is None or (isinstance(default, (str, list, dict)) and not default)
            shown = not empty and hint is not bool and "default" not in meta["help"]
            note = f"default {default}" if shown else None
        kw: dict[str, Any] = {"dest": flag_dest(f), "help": meta["help"] + (f" ({note})" if note else "")}
        if hint is bool:
            kw.update(action="store_true", default=argparse.SUPPRESS if unset else False)
        else:
            kw["default"] = argparse.SUPPRESS if unset else default
            if meta["metavar"]:
                kw["metavar"] = meta["metavar"]
            if get_origin(hint) is Literal:
                kw["choices"] = list(get_args(hint))
                kw["type"] = choice(kw["choices"])
            elif get_origin(hint) is list:
                kw["nargs"] = "*"
            else:
                kw["type"] = meta["type"] or (hint if hint in (int, float, str) else str)
        group.add_argument(flag_name(f), *meta["aliases"], **kw)
        for short, value in meta.get("shortcuts", {}).items():
            group.add_argument(short, dest=kw["dest"], action="store_const", const=value,
                               default=argparse.SUPPRESS, help=f"same as {flag_name(f)} {value}")


def config_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The field values the flags of `cls` hold in `args` (see add_config_args): every flag's, or with flags added
    with unset=True, only those the user gave."""
    out: dict[str, Any] = {}
    given: set[str] = set()
    for f in flag_fields(cls):
        if not hasattr(args, flag_dest(f)):
            continue
        value = getattr(args, flag_dest(f))
        if f.metadata["negate"]:
            value = not value
        given.add(f.name)
        out[f.name] = value
    for f in flag_fields(cls):
        for target in f.metadata["also"] if f.name in given else ():
            if target not in given:
                out[target] = out[f.name]
    return out


# ------------------------------------------------------------------------------------------------ mappings
class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the section and the key."""


def check_keys(d: Any, known: Iterable[str], where: str, source: str | None) -> None:
    """ConfigError unless `d` is a mapping whose keys are all in `known`."""
    known = list(known)
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source or 'config'}: section {where!r} must be a mapping, got {type(d).__name__}")
    unknown = [k for k in d if k not in known]
    if unknown:
        raise ConfigError(
            f"{source or 'config'}: unknown key {unknown[0]!r} in {where!r}"
            + (f" (also {', '.join(map(repr, unknown[1:]))})" if unknown[1:] else "")
            + f"; known keys: {', '.join(sorted(known))}"
        )


def config_from_mapping(cls: type[T], d: Mapping[str, Any] | None, where: str, source: str | None = None,
                        **given: Any) -> T:
    """`cls(**d)` where every key must be a field of `cls`; a field whose type is itself a
    config dataclass may be given as a nested mapping (checked the same way, as `where.field`). `given` are
    values set by the caller, not read from `d`. Errors name the file, section and key."""
    d = dict(d or {})
    check_keys(d, [f.name for f in dataclasses.fields(cls)], where, source)
    hints = typing.get_type_hints(cls)
    for name, value in list(d.items()):
        sub = _unwrap(hints.get(name))
        if dataclasses.is_dataclass(sub) and isinstance(value, Mapping):
            d[name] = config_from_mapping(sub, value, f"{where}.{name}", source)
    try:
        return cls(**d, **given)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{source or 'config'}: section {where!r}: {exc}") from exc


def yaml_load(text: Any) -> Any:
    """yaml.safe_load, but "1e-5" is a float (YAML 1.1, which PyYAML follows, needs "1.0e-5"): learning rates and
    budgets are written that way, and a string there would only fail deep inside the run. The one YAML reader
    of the configs (`rrd train`, the verl reward's settings)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
