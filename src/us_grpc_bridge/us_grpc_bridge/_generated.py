"""Generate the gRPC stubs of ``ultrasound.proto`` on first import (never committed).

The stubs are compiled with ``grpc_tools.protoc`` into
``$XDG_CACHE_HOME/us_grpc_bridge/<hash>/`` (``~/.cache`` when unset), where ``<hash>``
covers the ``.proto`` text and the grpcio-tools/protobuf versions: an edited ``.proto`` or a
new toolchain gives a new directory, so stale stubs are never used. Concurrent first imports
compile into private temporary directories and rename atomically.

The generated modules are typed as ``Any`` here so that mypy never reads generated code.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The service's proto, installed with the package (setup.py package_data).
PROTO_ROOT = Path(__file__).resolve().parent / "proto"
PROTO_FILE = PROTO_ROOT / "ultrasound" / "v1" / "ultrasound.proto"
#: Fully qualified service name.
SERVICE_NAME = "ultrasound.v1.Ultrasound"


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "us_grpc_bridge"


def _fingerprint() -> str:
    import google.protobuf
    import grpc_tools

    h = hashlib.sha256(PROTO_FILE.read_bytes())
    h.update(getattr(grpc_tools, "__version__", "").encode())
    try:
        from importlib.metadata import version

        h.update(version("grpcio-tools").encode())
    except Exception:  # noqa: BLE001 - metadata missing: the proto text still counts
        pass
    h.update(google.protobuf.__version__.encode())
    return h.hexdigest()[:16]


def _compile(out_dir: Path) -> None:
    from grpc_tools import protoc

    try:
        from importlib.resources import files

        well_known = str(files("grpc_tools") / "_proto")
    except Exception:  # noqa: BLE001
        well_known = ""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir.parent))
    try:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO_FILE),
        ]
        if well_known:
            args.insert(1, f"-I{well_known}")
        rc = protoc.main(args)
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed ({rc}) on {PROTO_FILE}")
        try:
            os.rename(tmp, out_dir)  # atomic; loses to a concurrent process harmlessly
        except OSError:
            if not (out_dir / "ultrasound" / "v1" / "ultrasound_pb2.py").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def stub_dir() -> Path:
    """The directory holding ``ultrasound/v1/ultrasound_pb2*.py``, compiled if missing.

    Falls back to the temporary directory when the cache directory is not writable.
    """
    fingerprint = _fingerprint()
    out = _cache_root() / fingerprint
    if (out / "ultrasound" / "v1" / "ultrasound_pb2_grpc.py").exists():
        return out
    try:
        _compile(out)
    except OSError:
        out = Path(tempfile.gettempdir()) / f"us_grpc_bridge-{os.getuid()}" / fingerprint
        if not (out / "ultrasound" / "v1" / "ultrasound_pb2_grpc.py").exists():
            _compile(out)
    return out


def _load() -> tuple[Any, Any]:
    path = str(stub_dir())
    if path not in sys.path:
        sys.path.insert(0, path)
    pb2 = importlib.import_module("ultrasound.v1.ultrasound_pb2")
    pb2_grpc = importlib.import_module("ultrasound.v1.ultrasound_pb2_grpc")
    return pb2, pb2_grpc


#: ``ultrasound_pb2`` (messages) and ``ultrasound_pb2_grpc`` (stubs), as Any for mypy.
pb2: Any
pb2_grpc: Any
pb2, pb2_grpc = _load()
