"""SHA-256 whose running state can be saved between Lambda invocations.

`hashlib` objects cannot be serialised, so each chunk of an upload would otherwise force the
registry to read the whole blob back at the end. libcrypto's low-level SHA256_* functions work
on a plain 112-byte SHA256_CTX that we can store with the upload state. We load the libcrypto
that Python's own `_hashlib` already mapped (dlsym through its handle resolves its
dependencies), so there is no library path to guess. Where those symbols are missing the
registry falls back to hashing the stored object when the upload finishes.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

STATE_SIZE = 112  # sizeof(SHA256_CTX): h[8], Nl, Nh, data[16], num, md_len (all 32-bit)
_DIGEST_SIZE = 32


@lru_cache(maxsize=1)
def _libcrypto() -> ctypes.CDLL | None:
    try:
        import _hashlib

        lib = ctypes.CDLL(_hashlib.__file__)
        for name in ("SHA256_Init", "SHA256_Update", "SHA256_Final"):
            getattr(lib, name)
    except (ImportError, OSError, AttributeError):
        return None
    lib.SHA256_Init.argtypes = [ctypes.c_void_p]
    lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    for name in ("SHA256_Init", "SHA256_Update", "SHA256_Final"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def available() -> bool:
    return _libcrypto() is not None


class ResumableSha256:
    """A SHA-256 whose `state()` bytes can be stored and handed back to the constructor."""

    def __init__(self, state: bytes | None = None) -> None:
        lib = _libcrypto()
        if lib is None:
            raise RuntimeError("libcrypto SHA256_* functions are not available")
        self._lib = lib
        self._ctx = ctypes.create_string_buffer(STATE_SIZE)
        if state is None:
            if lib.SHA256_Init(self._ctx) != 1:
                raise RuntimeError("SHA256_Init failed")
        else:
            if len(state) != STATE_SIZE:
                raise ValueError(f"SHA-256 state must be {STATE_SIZE} bytes, got {len(state)}")
            ctypes.memmove(self._ctx, state, STATE_SIZE)

    def update(self, data: bytes) -> None:
        if data and self._lib.SHA256_Update(self._ctx, data, len(data)) != 1:
            raise RuntimeError("SHA256_Update failed")

    def state(self) -> bytes:
        return self._ctx.raw

    def hexdigest(self) -> str:
        """The digest of everything so far; the running state is left untouched."""
        scratch = ctypes.create_string_buffer(self._ctx.raw, STATE_SIZE)
        out = ctypes.create_string_buffer(_DIGEST_SIZE)
        if self._lib.SHA256_Final(out, scratch) != 1:
            raise RuntimeError("SHA256_Final failed")
        return out.raw.hex()
