"""The fewest S3 bytes any registry can write per byte pushed in fixed-size chunks through
Lambda: the floor the chunked path's figure is measured against. Arithmetic only.

The model is the platform's: a request brings one chunk and nothing survives in Lambda
between requests; every part of the multipart upload but the last is at least 5 MiB and is
written by one call. So a request may put the bytes stored so far and some of its chunk into
a part, and must store the rest (a piece) for a later part; a stored byte is written twice.
A dynamic program over "bytes stored so far" finds the least stored over a long upload, where
how the upload ends no longer matters.
"""

from __future__ import annotations

from functools import cache

from chalicelib.uploads.state import PART_MIN

STEP = 64 * 1024  # the search holds bytes back in steps of this size
CHUNKS = 48  # long enough that the end of the upload is noise


def floor(chunk: int, part_min: int = PART_MIN, chunks: int = CHUNKS) -> float:
    """S3 bytes written per byte pushed by the best possible arrangement, for `chunks` chunks
    of `chunk` bytes."""
    size, need = chunk // STEP, part_min // STEP

    @cache
    def least_stored(stored: int, left: int) -> float:
        if left == 0:
            return 0
        best = float("inf")
        if stored + size < 3 * need:  # more than that waiting never pays
            best = size + least_stored(stored + size, left - 1)  # the whole chunk waits
        if stored + size >= need:  # a part, holding back `kept` for the next one
            for kept in range(0, min(size, stored + size - need) + 1):
                best = min(best, kept + least_stored(kept, left - 1))
        return best

    return 1 + least_stored(0, chunks) / (chunks * size)
