"""Writing files so that a kill at any moment leaves either the old file or the complete new one."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def _umask_mode(path: Path, full: int) -> None:
    """Give a mkstemp/mkdtemp path (0600/0700) the mode a plain open/mkdir would: run files readable by the group on a
    shared cluster, as the user's umask allows."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, full & ~mask)


class DiskFull(OSError):
    """No space left where a file was being written (the message names the file)."""


@contextmanager
def _named_on_full_disk(path: Path) -> Iterator[None]:
    """Turn a failed write on a full disk — an OSError 28 without a path, torch's RuntimeError, safetensors'
    SafetensorError — into one that names the file and says what to do."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - safetensors' SafetensorError is neither an OSError nor a RuntimeError
        full = getattr(err, "errno", None) == errno.ENOSPC or "No space left on device" in str(err)
        try:
            full = full or (isinstance(err, (OSError, RuntimeError)) and shutil.disk_usage(path.parent).free < 1 << 20)
        except OSError:
            pass
        if not full or isinstance(err, DiskFull):
            raise
        raise DiskFull(errno.ENOSPC, f"no space left on the device while writing {path} ({err}); free some space "
                                     "there, or point paths.log_dir / PACT_CACHE at a disk with room, and run again "
                                     "(the earlier file, if any, is unchanged)") from err


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    with _named_on_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    tmp = Path(tmp)
    _umask_mode(tmp, 0o666)
    try:
        with _named_on_full_disk(path):
            yield tmp
            _umask_mode(tmp, 0o666)  # a writer that recreated the file (safetensors: 0600) gets the umask's mode back
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def recover_dir(path: str | Path) -> None:
    """Put back a folder that a kill left moved aside mid-replacement (``.<name>.*.tmp.old``, the fallback of
    :func:`atomic_dir` where paths cannot be swapped in one step): the complete earlier copy takes its place again."""
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return
    aside = sorted(path.parent.glob(f".{path.name}.*.tmp.old"), key=lambda p: p.stat().st_mtime)
    if aside:
        os.replace(aside[-1], path)


def _umask_tree(root: Path) -> None:
    """Every file and folder under ``root`` with the mode the user's umask gives (safetensors writes its files 0600)."""
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            _umask_mode(Path(folder, name), 0o777)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                _umask_mode(Path(folder, name), 0o666)


@contextmanager
def atomic_dir(path: str | Path, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it takes the place of ``path``, so ``path`` is never a
    half-written folder. An earlier folder there is swapped out in one step and then removed (where the system cannot
    swap, it is moved aside first, and :func:`recover_dir` puts it back after a kill in between) — or, with
    ``keep_existing`` (caches), kept: another process (a DDP rank, a sweep job) finished first and its copy is
    complete. Files get the mode the user's umask gives, so a shared cache stays readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not keep_existing:
        recover_dir(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    _umask_mode(tmp, 0o777)
    try:
        with _named_on_full_disk(path):
            yield tmp
        _umask_tree(tmp)
        if keep_existing:
            try:
                os.replace(tmp, path)
            except OSError as err:  # a rename onto a non-empty folder: ENOTEMPTY on Linux, EEXIST elsewhere
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        elif path.exists() and _exchange(tmp, path):
            pass  # tmp now holds the earlier folder, removed below
        else:
            old = path.with_name(f"{tmp.name}.old")
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def subplots(*args, **kwargs):
    """``plt.subplots`` on matplotlib's file-only Agg backend (runs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path: str | Path) -> Path:
    """A matplotlib figure as a PNG at ``path``, written atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)
