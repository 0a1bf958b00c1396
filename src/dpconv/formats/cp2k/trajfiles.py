"""CP2K's per-step files: ``*-pos-1.xyz``/``*-frc-1.xyz`` trajectories and the
``*-1.ener``/``*-1.cell``/``*-1.stress`` tables, read in chunks of frames.

The xyz files are scanned for frame boundaries in blocks of a few megabytes
(line ends found with numpy on the raw bytes; every frame is ``natoms + 2``
lines), and the numbers of a whole chunk of frames are parsed by one
``np.fromstring`` call. Each frame's step comes from its comment line
(``i =        5, time =  2.500, E = -8.03``), never from its position.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dpconv.errors import ParseError

READ_BYTES = 2 << 20
_COMMENT_I = re.compile(rb"i =\s*(\d+)")
_COMMENT_E = re.compile(rb"E =\s*([-+]?[\d.]+(?:[EeDd][-+]?\d+)?)")
_LABEL = re.compile(rb"^[ \t]*\S+", re.M)
_COMMENT_LINE = re.compile(rb"^[ \t]*#[^\n]*\n", re.M)
_LETTERS_TO_SPACE = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", b" " * 52)


def parse_numbers(path: str, text: bytes, count: int, *, frame: int | None = None) -> np.ndarray:
    """Exactly ``count`` whitespace-separated floats from ``text``, or ParseError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            arr = np.fromstring(text, dtype=np.float64, sep=" ")  # type: ignore[call-overload]
        except (ValueError, DeprecationWarning):
            arr = None
    if arr is None or arr.size != count:
        raise ParseError(path, f"{count} numbers in a block of frames", frame=frame)
    return arr


@dataclass
class XyzChunk:
    """Consecutive frames of an xyz trajectory."""

    first: int  # index of the first frame in the file
    steps: np.ndarray  # (k,) int64, from 'i = N'; -1 when the comment has none
    energies: np.ndarray  # (k,) float64 hartree from 'E = x'; NaN when absent
    values: np.ndarray  # (k, natoms, 3) as written (Å for pos, hartree/bohr for frc)


def xyz_labels(path: str) -> list[str]:
    """The atom labels of the first frame."""
    with open(path, "rb") as fh:
        head = fh.readline()
        try:
            n = int(head)
        except ValueError:
            raise ParseError(path, "an atom count on the first line of an xyz trajectory", line=1) from None
        fh.readline()
        labels = []
        for i in range(n):
            parts = fh.readline().split()
            if len(parts) < 4:
                raise ParseError(path, "'label x y z' atom lines", line=i + 3)
            labels.append(parts[0].decode(errors="replace"))
    return labels


def iter_xyz(path: str, chunk_frames: int = 512) -> Iterator[XyzChunk]:
    """Yield the frames of an xyz trajectory in chunks; a cut final frame is dropped with a warning."""
    with open(path, "rb") as fh:
        first_line = fh.readline()
        try:
            natoms = int(first_line)
        except ValueError:
            raise ParseError(path, "an atom count on the first line of an xyz trajectory", line=1) from None
        if natoms <= 0:
            raise ParseError(path, "a positive atom count", line=1)
        fh.seek(0)
        per = natoms + 2
        carry = b""
        frame0 = 0
        eof = False
        while not eof:
            data = fh.read(READ_BYTES)
            eof = not data
            buf = carry + data
            if not buf:
                break
            nl = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
            nfull = len(nl) // per
            if eof and len(nl) % per:
                tail = buf[nl[nfull * per - 1] + 1 :] if nfull else buf
                if tail.strip():
                    if nfull == 0 and frame0 == 0:
                        raise ParseError(path, f"a complete first frame of {natoms} atoms", frame=0)
                    warnings.warn(f"{path}: frame {frame0 + nfull} is truncated; dropped", stacklevel=3)
            if nfull == 0:
                carry = buf
                continue
            end = int(nl[nfull * per - 1]) + 1
            for lo in range(0, nfull, chunk_frames):
                hi = min(nfull, lo + chunk_frames)
                yield _parse_frames(path, buf, nl, lo, hi, natoms, frame0)
                frame0 += hi - lo
            carry = buf[end:]


def _parse_frames(path: str, buf: bytes, nl: np.ndarray, lo: int, hi: int, natoms: int, frame0: int) -> XyzChunk:
    """Frames ``lo:hi`` of ``buf`` (``nl``: its newline offsets), parsed in bulk.

    Line kinds are known from the position (count, comment, ``natoms`` atom lines);
    the bytes of each kind are gathered with one numpy mask, so there is no loop
    over frames or atoms.
    """
    per = natoms + 2
    k = hi - lo
    idx = np.arange(lo * per, hi * per)
    ends = nl[idx] + 1
    begins = np.where(idx > 0, nl[np.maximum(idx - 1, 0)] + 1, 0)
    region = np.frombuffer(buf, dtype=np.uint8)[begins[0] : ends[-1]]
    kind = (idx - lo * per) % per
    lens = ends - begins
    counts = parse_numbers(path, region[np.repeat(kind == 0, lens)].tobytes(), k, frame=frame0)
    bad = np.flatnonzero(counts != natoms)
    if bad.size:
        raise ParseError(path, f"an atom count of {natoms} (the first frame's)", frame=frame0 + int(bad[0]))
    comments = region[np.repeat(kind == 1, lens)].tobytes()
    steps = _per_line(_COMMENT_I, comments, k, np.int64, -1)
    energies = _per_line(_COMMENT_E, comments.replace(b"D", b"E"), k, np.float64, np.nan)
    body = region[np.repeat(kind >= 2, lens)].tobytes()
    try:  # fast path: element symbols are letters only; an exponent or a digit in a label changes the count
        values = parse_numbers(path, body.translate(_LETTERS_TO_SPACE), k * natoms * 3, frame=frame0)
    except ParseError:
        values = parse_numbers(path, _LABEL.sub(b"", body), k * natoms * 3, frame=frame0)
    values = values.reshape(k, natoms, 3)
    return XyzChunk(frame0, steps, energies, values)


def _per_line(rx: re.Pattern[bytes], text: bytes, k: int, dtype: type, missing: float) -> np.ndarray:
    """One value of ``rx`` per line of ``text`` (``missing`` where a line has none)."""
    found = rx.findall(text)
    if len(found) == k:
        return np.array(found).astype(dtype)
    out = np.full(k, missing, dtype)
    for i, line in enumerate(text.split(b"\n")[:k]):
        m = rx.search(line)
        if m:
            out[i] = float(m.group(1))
    return out


def iter_table(path: str, block_bytes: int = READ_BYTES) -> Iterator[np.ndarray]:
    """Rows of a whitespace table of numbers with ``#`` comment lines (``.ener``/``.cell``/
    ``.stress``), in blocks of rows (2-D arrays). A cut final row is dropped with a warning."""
    width = 0
    carry = b""
    row0 = 0
    with open(path, "rb") as fh:
        while True:
            data = fh.read(block_bytes)
            buf = carry + data
            if not data:
                tail = buf.split()
                if tail and not (buf.lstrip().startswith(b"#") or (width and len(tail) == width)):
                    warnings.warn(f"{path}: frame {row0} is truncated; dropped", stacklevel=3)
                elif tail and width and not buf.lstrip().startswith(b"#"):
                    yield parse_numbers(path, buf, width).reshape(1, width)  # no newline at the end
                break
            cut = buf.rfind(b"\n") + 1
            block, carry = buf[:cut], buf[cut:]
            if b"#" in block:
                block = _COMMENT_LINE.sub(b"", block)
            if not block.strip():
                continue
            nrows = block.count(b"\n")
            if not width:
                width = len(block[: block.index(b"\n")].split())
                if width == 0:
                    raise ParseError(path, "rows of numbers", line=1)
            try:
                rows = parse_numbers(path, block, nrows * width).reshape(nrows, width)
            except ParseError:
                good = _whole_rows(block, width)
                if good is None:
                    raise ParseError(path, f"rows of {width} numbers", frame=row0) from None
                warnings.warn(f"{path}: frame {row0 + len(good)} is truncated; dropped", stacklevel=3)
                yield good
                return
            row0 += nrows
            yield rows
    if not width:
        raise ParseError(path, "rows of numbers")


def _whole_rows(block: bytes, width: int) -> np.ndarray | None:
    """The rows before a short final row (a cut file), or None when the damage is elsewhere."""
    lines = block.rstrip(b"\n").split(b"\n")
    body, last = lines[:-1], lines[-1]
    if len(last.split()) >= width:
        return None
    try:
        return np.array(b" ".join(body).split(), dtype=np.float64).reshape(-1, width)
    except ValueError:
        return None


def read_table(path: str) -> np.ndarray:
    """The whole table (see :func:`iter_table`)."""
    return np.concatenate(list(iter_table(path)))
