"""Opening a file beneath a directory descriptor, so no symlink or rename can lead outside it.

`openat2(RESOLVE_BENEATH)` where the kernel has it (Linux 5.6+): symlinks are followed only while
they stay beneath the directory. Elsewhere each component is opened with O_NOFOLLOW relative to
the one before, so no symlink is followed at all. Either way the caller reads from the descriptor
it got, never from a path opened a second time.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
# errnos that mean "the path led outside the directory, or through a link we do not follow".
ESCAPE_ERRNOS = frozenset({errno.EXDEV, errno.ELOOP, errno.ENOTDIR})


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc: ctypes.CDLL | None = None
_openat2_works = _SYS_OPENAT2 is not None


def _openat2(dir_fd: int, rel: str, flags: int) -> int:
    global _libc, _openat2_works
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    how = _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(rel)),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):  # an old kernel, or a seccomp filter that refuses it
        _openat2_works = False
        return _open_nofollow(dir_fd, rel, flags)
    raise OSError(err, os.strerror(err), rel)


def _open_nofollow(dir_fd: int, rel: str, flags: int) -> int:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(errno.EXDEV, "path leaves the directory", rel)
    fd = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.open(parts[-1], flags | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)


def open_beneath(root: str | os.PathLike[str], rel: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor for `rel` opened beneath the directory `root`; OSError (see ESCAPE_ERRNOS) if not."""
    flags |= os.O_CLOEXEC | os.O_NOCTTY
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _openat2_works:
            return _openat2(dir_fd, rel, flags)
        return _open_nofollow(dir_fd, rel, flags)
    finally:
        os.close(dir_fd)
