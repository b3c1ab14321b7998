"""Safe file access for user paths: regular files only, atomic exclusive-temp writes, no overwrite of inputs."""
from __future__ import annotations

import os
import stat
import tempfile

from .errors import TensorforgeError


def regular_file(path: str, what: str = "file") -> os.stat_result:
    """stat of path; one-line error when it is missing or not a regular file (FIFO, device, directory)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TensorforgeError(f"{what} not found: {path}") from None
    except OSError as e:
        raise TensorforgeError(f"cannot open {what} {path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise TensorforgeError(f"{what} path is a directory: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise TensorforgeError(f"{what} is not a regular file (a device, FIFO or socket): {path}")
    return st


def atomic_write(path: str, data, what: str = "file") -> None:
    """Write data (bytes, or a list of buffers written in order) to path atomically: a new temp file
    with an unpredictable name, created exclusively (O_CREAT|O_EXCL, never through a pre-existing
    symlink) in the target's folder, then renamed over it. A failure leaves any existing file at path
    untouched."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        raise TensorforgeError(f"cannot write {what} {path}: it is a directory")
    if os.path.exists(path) and not os.path.isfile(path):
        _write_special(path, data, what)
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as e:
        raise TensorforgeError(f"cannot write {what} {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data)
        if os.path.exists(path):  # keep the permissions the user gave the file it replaces
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise TensorforgeError(f"cannot write {what} {path}: {e.strerror}") from None


def _write_all(f, data) -> None:
    for b in ([data] if isinstance(data, (bytes, bytearray, memoryview)) else data):
        f.write(b)


def _write_special(path: str, data, what: str) -> None:
    """Write into a character device (/dev/null, /dev/stdout) as asked; refuse FIFOs and sockets
    (a FIFO without a reader would block forever)."""
    if not stat.S_ISCHR(os.stat(path).st_mode):
        raise TensorforgeError(f"cannot write {what} {path}: not a regular file or a character device")
    try:
        with open(path, "wb") as f:
            _write_all(f, data)
    except OSError as e:
        raise TensorforgeError(f"cannot write {what} {path}: {e.strerror}") from None


def same_file(a: str, b: str) -> bool:
    """True when paths a and b name the same existing file (or the same path)."""
    a, b = os.path.expanduser(str(a)), os.path.expanduser(str(b))
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_distinct(inputs, outputs, error=TensorforgeError) -> None:
    """Refuse (raise `error`) an output that names an input file, which writing it would destroy, or
    two outputs naming one file. inputs: (what the file is, path), e.g. ("the input model", p);
    outputs: (flag, path); empty paths and zoo: names are skipped; /dev/null, /dev/stdout and
    /dev/stderr may be named by several outputs."""
    ins = [(f, p) for f, p in inputs if p and not str(p).startswith("zoo:")]
    outs = [(f, p) for f, p in outputs if p]
    for flag, path in outs:
        for iflag, ipath in ins:
            if same_file(path, ipath):
                raise error(f"{flag} {path} is {iflag}; refusing to overwrite it")
    for i, (flag, path) in enumerate(outs):
        for flag2, path2 in outs[i + 1:]:
            if same_file(path, path2) and path not in ("/dev/null", "/dev/stdout", "/dev/stderr"):
                raise error(f"{flag} and {flag2} name the same file ({path}); give each output its own file")


NPY_MAGIC = b"\x93NUMPY"


def read_npy(path: str):
    """An array of a .npy file (NumPy header checked, no pickled objects), or a one-line error."""
    import numpy as np
    try:
        with open(path, "rb") as f:
            if f.read(6) != NPY_MAGIC:
                raise TensorforgeError(f"{path}: not a .npy file (no NumPy header)")
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise TensorforgeError(f"{path}: cannot read the .npy ({e})") from None


def read_npz(path: str) -> dict:
    """{name: array} of a .npz file (a regular file; no pickled objects), or a one-line error."""
    import zipfile
    import zlib

    import numpy as np
    regular_file(path, "input file")
    try:
        z = np.load(path, allow_pickle=False)
        arrays = {k: z[k] for k in z.files} if hasattr(z, "files") else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise TensorforgeError(f"{path}: cannot read the .npz ({e})") from None
    if arrays is None:
        raise TensorforgeError(f"{path}: not a .npz archive (a single .npy array)")
    return arrays
