"""Quantum ESPRESSO input files: a namelist/card parser, Bravais lattices, and the ``qe/pw/input`` writer.

The parser reads the input files of ``pw.x`` and ``cp.x`` (Fortran namelists
``&control ... /`` followed by cards such as ``ATOMIC_SPECIES``). Namelist and
key names are case-insensitive and stored in lower case; ``!`` starts a comment
outside quoted strings. :func:`input_cell` builds the cell for ``ibrav = 0``
(``CELL_PARAMETERS`` in ``alat``, ``bohr`` or ``angstrom``) and for the
``ibrav`` values of QE's ``latgen`` from ``celldm(i)`` or ``A, B, C, cosAB,
cosAC, cosBC``, with the vectors QE documents in ``INPUT_PW``.

:func:`write` produces a ready-to-run ``pw.x`` SCF input (forces and stress
printed) for one frame of a System.
"""

from __future__ import annotations

import glob
import itertools
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dpconv.elements import MASSES
from dpconv.errors import DpconvError, ParseError
from dpconv.units import BOHR_TO_ANGSTROM

CARDS = (
    "ATOMIC_SPECIES",
    "ATOMIC_POSITIONS",
    "K_POINTS",
    "ADDITIONAL_K_POINTS",
    "CELL_PARAMETERS",
    "REF_CELL_PARAMETERS",
    "CONSTRAINTS",
    "OCCUPATIONS",
    "ATOMIC_VELOCITIES",
    "ATOMIC_FORCES",
    "SOLVENTS",
    "HUBBARD",
    "AUTOPILOT",
    "PLOT_WANNIER",
    "WANNIER_AC",
)
_CARD_RE = re.compile(r"^\s*(" + "|".join(CARDS) + r")\b\s*(.*)$", re.IGNORECASE)
_CARD_STARTS = frozenset(c[:3] for c in CARDS)  # a stripped line can match _CARD_RE only if it starts so
# a namelist token: a quoted string, '/', '=', ',' or a run of other characters
_TOKEN_RE = re.compile(r"'[^']*'|\"[^\"]*\"|[=,/]|[^\s=,/'\"]+")
# the same tokens over lines joined by newlines (a quoted string does not run on to the next line)
_LINES_TOKEN_RE = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|[=,/]|[^\s=,/'\"]+")
_FLOAT_FIX = str.maketrans("dD", "eE")
_SPACE_RE = re.compile(r"\s+")


@dataclass
class Card:
    """A card: its option (``angstrom``, ``crystal``, ``alat= 10.2`` ...; lower case) and its data lines."""

    name: str
    option: str
    lines: list[str] = field(default_factory=list)
    line: int = 0  # 1-based line number of the card header


@dataclass
class PwInput:
    """A parsed pw.x/cp.x input: namelists (lower-case keys) and cards (upper-case names)."""

    path: str
    namelists: dict[str, dict[str, Any]]
    cards: dict[str, Card]

    def get(self, key: str, default: Any = None) -> Any:
        """A namelist value by (case-insensitive) key, searched in every namelist."""
        k = key.lower()
        for nl in self.namelists.values():
            if k in nl:
                return nl[k]
        return default

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise ParseError(self.path, f"the input has no {key!r} in its namelists")
        return value

    def species(self) -> list[str]:
        """Species labels in ``ATOMIC_SPECIES`` order."""
        card = self.cards.get("ATOMIC_SPECIES")
        if card is None:
            raise ParseError(self.path, "an ATOMIC_SPECIES card")
        return [ln.split()[0] for ln in card.lines]


_TRUE = frozenset((".true.", "t", ".t.", "true"))
_FALSE = frozenset((".false.", "f", ".f.", "false"))


def _value(tok: str) -> Any:
    if tok[:1] in "'\"":
        return tok[1:-1]
    if tok.isdecimal():  # most integers, without the cost of a failed int() on every float
        return int(tok)
    low = tok.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    if "." not in tok:  # int() never takes a '.'
        try:
            return int(tok)
        except ValueError:
            pass
    try:
        return float(tok.translate(_FLOAT_FIX))
    except ValueError:
        return tok


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``!`` or ``#`` comment (quotes respected)."""
    if "!" not in line and "#" not in line:  # most lines: no per-character loop
        return line
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "!#":
            return line[:i]
    return line


def parse_input(text: str, path: str = "<input>") -> PwInput:
    """Parse the text of a pw.x/cp.x input file."""
    namelists: dict[str, dict[str, Any]] = {}
    cards: dict[str, Card] = {}
    card: Card | None = None
    if "!" in text or "#" in text:
        lines = [_strip_comment(raw).strip() for raw in text.splitlines()]
    else:  # no line needs the per-character comment scan
        lines = [raw.strip() for raw in text.splitlines()]
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        i += 1  # the 1-based number of this line
        if not line:
            continue
        if line[0] == "&":
            nl_name = line[1:].split()[0].lower() if len(line) > 1 else ""
            current = namelists.setdefault(nl_name, {})
            card = None
            first = line = line[1 + len(nl_name) :]
            end = i - 1  # the namelist ends on the first line (this one's rest included) with a '/' token
            while True:
                if "/" in line:
                    toks = _TOKEN_RE.findall(line)
                    if "/" in toks:
                        break
                end += 1
                if end == n:
                    raise ParseError(path, f"namelist &{nl_name} is not closed by '/'")
                line = lines[end]
            tokens = toks[: toks.index("/")]
            if end >= i:  # the lines before the last, tokenized at once: no token crosses a line break
                tokens = _LINES_TOKEN_RE.findall("\n".join([first, *lines[i:end]])) + tokens
            current.update(_assignments(tokens, path, nl_name))
            i = end + 1
            continue
        # the card regex only where a card name can start (not on the data lines of a card)
        head = line[:3]
        m = _CARD_RE.match(line) if not head.isascii() or head.upper() in _CARD_STARTS else None
        if m:
            name = m.group(1).upper()
            option = m.group(2).strip().strip("{}()").strip().lower()
            card = Card(name, option, line=i)
            cards.setdefault(name, card)
        elif card is not None:
            card.lines.append(line)
    return PwInput(path, namelists, cards)


def _key(tok: str) -> str:
    return (_SPACE_RE.sub("", tok) if tok[:1] in "'\"" else tok).lower()  # other tokens hold no space


def _assignments(tokens: list[str], path: str, nl_name: str) -> dict[str, Any]:
    # the usual namelist, ``key = value`` pairs (commas between them ignored): pairs read off at once
    if "," in tokens:
        plain = [t for t in tokens if t != ","]
        simple = all(b != "=" for a, b in itertools.pairwise(tokens) if a == ",")  # no comma before an '='
    else:
        plain, simple = tokens, True
    npairs = len(plain) // 3
    if (
        simple
        and len(plain) == 3 * npairs
        and plain[1::3].count("=") == npairs
        and "=" not in plain[0::3]
        and "=" not in plain[2::3]
    ):
        return {_key(k): _value(v) for k, v in zip(plain[0::3], plain[2::3])}
    out: dict[str, Any] = {}
    i = 0
    key = ""
    while i < len(tokens):
        tok = tokens[i]
        if tok == ",":
            i += 1
            continue
        if i + 1 < len(tokens) and tokens[i + 1] == "=":
            key = _key(tok)
            i += 2
            values = []
            while i < len(tokens) and not (i + 1 < len(tokens) and tokens[i + 1] == "="):
                if tokens[i] != ",":
                    values.append(_value(tokens[i]))
                i += 1
            if not values:
                raise ParseError(path, f"a value for {key!r} in &{nl_name}")
            out[key] = values[0] if len(values) == 1 else values
            continue
        raise ParseError(path, f"'key = value' pairs in &{nl_name}, got {tok!r}")
    return out


def read_input(path: str) -> PwInput:
    try:
        with open(path, "rb", buffering=0) as fh:  # bytes decoded at once: text mode costs more than the parse
            text = fh.readall().decode("utf-8", "replace")
    except OSError as exc:
        raise ParseError(path, f"a readable pw.x/cp.x input file ({exc.strerror})") from None
    if "\r" in text:  # the universal newlines of text mode
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text[:4096]:
        raise ParseError(path, "a text pw.x/cp.x input file, found binary data")
    inp = parse_input(text, path)
    if not inp.namelists:
        raise ParseError(path, "a pw.x/cp.x input with namelists (&control, &system ...)")
    return inp


# -- cells -----------------------------------------------------------------------------
_CELLDM_KEYS = tuple(f"celldm({i})" for i in range(1, 7))


def celldm_of(inp: PwInput) -> np.ndarray:
    """``celldm(1..6)`` (bohr and ratios), from ``celldm(i)`` or from ``A, B, C, cosAB, cosAC, cosBC``."""
    get = inp.get
    ibrav = int(get("ibrav", 0))
    celldm = np.zeros(6)
    given = False
    for i, key in enumerate(_CELLDM_KEYS):
        v = get(key)
        if v is not None:
            celldm[i] = float(v)
            given = True
    a = get("a")
    if a is not None:
        if given:
            raise ParseError(inp.path, "either celldm(i) or A, B, C ... (both are given)")
        a = float(a)
        celldm[0] = a / BOHR_TO_ANGSTROM
        celldm[1] = float(get("b", 0.0)) / a
        celldm[2] = float(get("c", 0.0)) / a
        cosab, cosac, cosbc = (float(get(k, 0.0)) for k in ("cosab", "cosac", "cosbc"))
        if ibrav == 14:
            celldm[3], celldm[4], celldm[5] = cosbc, cosac, cosab
        elif ibrav in (-12, -13):
            celldm[4] = cosac
        else:
            celldm[3] = cosab
    return celldm


def bravais_vectors(ibrav: int, celldm: Sequence[float]) -> np.ndarray:
    """Lattice vectors (rows, in bohr) of QE's Bravais lattice ``ibrav`` (``ibrav != 0``).

    The conventions are those of QE's ``INPUT_PW`` documentation (``latgen``):
    ``a = celldm(1)``, ``b/a = celldm(2)``, ``c/a = celldm(3)`` and the cosines
    in ``celldm(4..6)``.
    """
    a = float(celldm[0])
    if a <= 0:
        raise ValueError("celldm(1) (or A) must be positive")
    ba, ca, c4, c5, c6 = (float(x) for x in celldm[1:6])
    b, c = a * ba, a * ca
    h = a / 2
    if ibrav == 1:
        v = [[a, 0, 0], [0, a, 0], [0, 0, a]]
    elif ibrav == 2:
        v = [[-h, 0, h], [0, h, h], [-h, h, 0]]
    elif ibrav == 3:
        v = [[h, h, h], [-h, h, h], [-h, -h, h]]
    elif ibrav == -3:
        v = [[-h, h, h], [h, -h, h], [h, h, -h]]
    elif ibrav == 4:
        v = [[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]]
    elif ibrav in (5, -5):
        if not -0.5 < c4 < 1:
            raise ValueError("celldm(4) = cos(gamma) must lie in (-1/2, 1) for ibrav 5/-5")
        tx, ty, tz = math.sqrt((1 - c4) / 2), math.sqrt((1 - c4) / 6), math.sqrt((1 + 2 * c4) / 3)
        if ibrav == 5:
            v = [[a * tx, -a * ty, a * tz], [0, 2 * a * ty, a * tz], [-a * tx, -a * ty, a * tz]]
        else:
            ap = a / math.sqrt(3)
            u, w = tz - 2 * math.sqrt(2) * ty, tz + math.sqrt(2) * ty
            v = [[ap * u, ap * w, ap * w], [ap * w, ap * u, ap * w], [ap * w, ap * w, ap * u]]
    elif ibrav == 6:
        v = [[a, 0, 0], [0, a, 0], [0, 0, c]]
    elif ibrav == 7:
        v = [[h, -h, c / 2], [h, h, c / 2], [-h, -h, c / 2]]
    elif ibrav == 8:
        v = [[a, 0, 0], [0, b, 0], [0, 0, c]]
    elif ibrav == 9:
        v = [[h, b / 2, 0], [-h, b / 2, 0], [0, 0, c]]
    elif ibrav == -9:
        v = [[h, -b / 2, 0], [h, b / 2, 0], [0, 0, c]]
    elif ibrav == 91:
        v = [[a, 0, 0], [0, b / 2, -c / 2], [0, b / 2, c / 2]]
    elif ibrav == 10:
        v = [[h, 0, c / 2], [h, b / 2, 0], [0, b / 2, c / 2]]
    elif ibrav == 11:
        v = [[h, b / 2, c / 2], [-h, b / 2, c / 2], [-h, -b / 2, c / 2]]
    elif ibrav == 12:
        v = [[a, 0, 0], [b * c4, b * math.sqrt(1 - c4**2), 0], [0, 0, c]]
    elif ibrav == -12:
        v = [[a, 0, 0], [0, b, 0], [c * c5, 0, c * math.sqrt(1 - c5**2)]]
    elif ibrav == 13:
        v = [[h, 0, -c / 2], [b * c4, b * math.sqrt(1 - c4**2), 0], [h, 0, c / 2]]
    elif ibrav == -13:
        v = [[h, b / 2, 0], [-h, b / 2, 0], [c * c5, 0, c * math.sqrt(1 - c5**2)]]
    elif ibrav == 14:
        sg = math.sqrt(1 - c6**2)
        vol = 1 + 2 * c4 * c5 * c6 - c4**2 - c5**2 - c6**2
        if vol <= 0 or sg == 0:
            raise ValueError("celldm(4..6) do not describe a triclinic cell")
        v = [[a, 0, 0], [b * c6, b * sg, 0], [c * c5, c * (c4 - c5 * c6) / sg, c * math.sqrt(vol) / sg]]
    else:
        raise ValueError(f"ibrav = {ibrav} is not a Bravais lattice index QE knows")
    return np.array(v, dtype=np.float64)


def input_alat(inp: PwInput, cell_bohr: np.ndarray | None = None, celldm: np.ndarray | None = None) -> float | None:
    """QE's ``alat`` in bohr: ``celldm(1)`` or ``A``; for ``ibrav = 0`` without them, ``|a1|``.
    ``celldm`` is :func:`celldm_of` ``(inp)`` when the caller has it already."""
    if celldm is None:
        celldm = celldm_of(inp)
    if celldm[0] > 0:
        return float(celldm[0])
    if cell_bohr is not None:
        return float(np.linalg.norm(cell_bohr[0]))
    return None


def input_cell(inp: PwInput, celldm: np.ndarray | None = None) -> np.ndarray:
    """The cell of the input in Å (rows are the lattice vectors); ``celldm`` as in :func:`input_alat`."""
    ibrav = int(inp.get("ibrav", 0) or 0)
    if celldm is None:
        celldm = celldm_of(inp)
    if ibrav != 0:
        try:
            return bravais_vectors(ibrav, celldm.tolist()) * BOHR_TO_ANGSTROM
        except ValueError as exc:
            raise ParseError(inp.path, f"a valid ibrav/celldm: {exc}") from None
    card = inp.cards.get("CELL_PARAMETERS")
    if card is None:
        raise ParseError(inp.path, "a CELL_PARAMETERS card (ibrav = 0)")
    rows = _numbers(card.lines[:3], 3, inp.path, card.line, "three rows of CELL_PARAMETERS")
    unit = card.option.split("=")[0].strip()
    if unit == "angstrom":
        return rows
    if unit == "bohr":
        return rows * BOHR_TO_ANGSTROM
    if unit in ("alat", ""):
        if celldm[0] <= 0:
            if unit == "alat":
                raise ParseError(inp.path, "celldm(1) or A for CELL_PARAMETERS {alat}", line=card.line)
            return rows * BOHR_TO_ANGSTROM  # no unit and no alat: QE reads bohr
        return rows * celldm[0] * BOHR_TO_ANGSTROM
    raise ParseError(inp.path, f"CELL_PARAMETERS in alat, bohr or angstrom, got {card.option!r}", line=card.line)


def _numbers(lines: Sequence[str], ncol: int, path: str, line: int, what: str) -> np.ndarray:
    try:
        rows = [[float(x.translate(_FLOAT_FIX)) for x in ln.split()[:ncol]] for ln in lines]
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        raise ParseError(path, what, line=line) from None
    if arr.shape != (len(lines), ncol):
        raise ParseError(path, what, line=line)
    return arr


def positions_to_angstrom(
    values: np.ndarray, unit: str, cell: np.ndarray, alat_bohr: float | None, path: str, line: int | None = None
) -> np.ndarray:
    """Cartesian Å from ATOMIC_POSITIONS values in ``unit`` (alat, bohr, angstrom, crystal)."""
    unit = unit.split("=", maxsplit=1)[0].strip() or "alat"
    if unit == "angstrom":
        return values
    if unit == "bohr":
        return values * BOHR_TO_ANGSTROM
    if unit == "crystal":
        return values @ cell
    if unit == "alat":
        if not alat_bohr:
            raise ParseError(path, "the lattice parameter (alat) for ATOMIC_POSITIONS in alat units", line=line)
        return values * alat_bohr * BOHR_TO_ANGSTROM
    raise ParseError(path, f"ATOMIC_POSITIONS in alat, bohr, angstrom or crystal, got {unit!r}", line=line)


def input_structure(inp: PwInput) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels (one per atom, input order), cell (Å) and coordinates (Å) of the input."""
    nat = int(inp.require("nat"))
    celldm = celldm_of(inp)
    cell = input_cell(inp, celldm)
    card = inp.cards.get("ATOMIC_POSITIONS")
    if card is None:
        raise ParseError(inp.path, "an ATOMIC_POSITIONS card")
    if len(card.lines) < nat:
        raise ParseError(inp.path, f"{nat} lines in ATOMIC_POSITIONS (nat), found {len(card.lines)}", line=card.line)
    rows = [ln.split() for ln in card.lines[:nat]]
    labels = [r[0] for r in rows]
    what = "label x y z on every ATOMIC_POSITIONS line"
    try:  # the numbers of all atoms in one conversion; float() of each, as _numbers does
        if not rows or not all(len(r) >= 4 for r in rows):
            raise ValueError
        text = " ".join([" ".join(r[1:4]) for r in rows]).translate(_FLOAT_FIX)
        values = np.array([float(x) for x in text.split()], dtype=np.float64).reshape(len(rows), 3)
    except ValueError:
        raise ParseError(inp.path, what, line=card.line) from None
    alat = float(celldm[0]) if celldm[0] > 0 else input_alat(inp, cell / BOHR_TO_ANGSTROM, celldm)
    coords = positions_to_angstrom(values, card.option, cell, alat, inp.path, card.line)
    return labels, cell, coords


def types_of(labels: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names in order of first appearance, per-atom type indices and counts."""
    index: dict[str, int] = {}
    types = np.array([index.setdefault(lab, len(index)) for lab in labels], dtype=np.int64)
    names = list(index)
    return names, types, np.bincount(types, minlength=len(names)).astype(np.int64)


# -- the qe/pw/input writer ------------------------------------------------------------
ATOMIC_MASS = MASSES  # pw.x uses masses only for dynamics
DEFAULT_PSEUDO_DIR = "/usr/share/espresso/pseudo"


def element_of(label: str) -> str:
    """The element of a species label: ``Fe1`` -> ``Fe``, ``H_a`` -> ``H``, ``o`` -> ``O``."""
    m = re.match(r"[A-Za-z]{1,2}", label)
    if not m:
        return label
    s = m.group(0)
    cand = s[0].upper() + s[1:].lower()
    if cand in ATOMIC_MASS:
        return cand
    return s[0].upper()


def find_pseudo(label: str, pseudo_dir: str, pattern: str) -> str:
    el = element_of(label)
    hits = sorted(glob.glob(os.path.join(glob.escape(pseudo_dir), pattern.format(el=el))))
    if not hits:
        raise DpconvError(
            f"no pseudopotential for {label!r}: nothing matches {pattern.format(el=el)!r} in {pseudo_dir}; "
            "give pseudo={'El': 'file.UPF', ...}"
        )
    return os.path.basename(hits[0])


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value)).replace("e", "d") if "e" in repr(float(value)) else repr(float(value))
    return "'" + str(value) + "'"


def render_input(
    names: Sequence[str],
    types: np.ndarray,
    cell: np.ndarray,
    coords: np.ndarray,
    *,
    pseudo: Mapping[str, str] | None = None,
    pseudo_dir: str = DEFAULT_PSEUDO_DIR,
    pseudo_pattern: str = "{el}.pbe-*.UPF",
    ecutwfc: float = 25.0,
    ecutrho: float | None = None,
    kpoints: Sequence[int] | None = None,
    kshift: Sequence[int] = (0, 0, 0),
    masses: Mapping[str, float] | None = None,
    prefix: str = "dpconv",
    outdir: str = "./tmp",
    control: Mapping[str, Any] | None = None,
    system: Mapping[str, Any] | None = None,
    electrons: Mapping[str, Any] | None = None,
) -> str:
    """The text of a pw.x SCF input for one structure (cell and coords in Å)."""
    used = [n for i, n in enumerate(names) if np.any(types == i)]
    pseudo = dict(pseudo or {})
    files = {n: pseudo.get(n) or pseudo.get(element_of(n)) or find_pseudo(n, pseudo_dir, pseudo_pattern) for n in used}
    masses = dict(masses or {})
    nl_control: dict[str, Any] = {
        "calculation": "scf",
        "prefix": prefix,
        "pseudo_dir": pseudo_dir,
        "outdir": outdir,
        "tprnfor": True,
        "tstress": True,
    }
    nl_control.update(control or {})
    nl_system: dict[str, Any] = {"ibrav": 0, "nat": len(types), "ntyp": len(used), "ecutwfc": float(ecutwfc)}
    if ecutrho is not None:
        nl_system["ecutrho"] = float(ecutrho)
    nl_system.update(system or {})
    nl_electrons: dict[str, Any] = dict(electrons or {})
    out = []
    for name, nl in (("control", nl_control), ("system", nl_system), ("electrons", nl_electrons)):
        out.append(f"&{name}")
        out.extend(f"  {k} = {_fmt(v)}" for k, v in nl.items())
        out.append("/")
    out.append("ATOMIC_SPECIES")
    for n in used:
        el = element_of(n)
        mass = masses[n] if n in masses else masses.get(el, ATOMIC_MASS.get(el, 1.0))
        out.append(f"  {n} {mass:.4f} {files[n]}")
    out.append("CELL_PARAMETERS angstrom")
    out.extend("  " + " ".join(f"{x:18.12f}" for x in row) for row in cell)
    out.append("ATOMIC_POSITIONS angstrom")
    out.extend(f"  {names[t]:4s}" + " ".join(f"{x:18.12f}" for x in xyz) for t, xyz in zip(types, coords, strict=True))
    if kpoints is None:
        out.append("K_POINTS gamma")
    else:
        if len(kpoints) != 3:
            raise DpconvError(f"kpoints must be three integers (a Monkhorst-Pack grid), got {kpoints!r}")
        out.append("K_POINTS automatic")
        out.append("  " + " ".join(str(int(k)) for k in kpoints) + "  " + " ".join(str(int(s)) for s in kshift))
    return "\n".join(out) + "\n"


def write(path: str, blocks: Iterable[Mapping[str, Any]], *, frame: int | None = None, **kwargs: Any) -> None:
    """Write a pw.x SCF input for one frame.

    Keyword arguments (see :func:`render_input`): ``pseudo`` (mapping label or
    element -> UPF file), ``pseudo_dir`` (default ``/usr/share/espresso/pseudo``),
    ``pseudo_pattern`` (default ``"{el}.pbe-*.UPF"``, first match in sorted order),
    ``ecutwfc`` (Ry, default 25), ``ecutrho`` (Ry, default QE's 4 x ecutwfc),
    ``kpoints`` (a Monkhorst-Pack grid such as ``(4, 4, 4)``; default Gamma only),
    ``kshift``, ``masses``, ``prefix``, ``outdir`` and the ``control``/``system``/
    ``electrons`` mappings whose keys are added to (or override) the namelists.
    A system of several frames needs ``frame=i``.
    """
    chosen: Mapping[str, Any] | None = None
    seen = 0
    for block in blocks:
        n = len(block["coords"])
        if frame is None:
            if seen + n > 1:
                raise DpconvError("qe/pw/input holds one structure: give frame=<index> for a multi-frame system")
            if n:
                chosen = {**block, "cells": block["cells"][0], "coords": block["coords"][0]}
        elif seen <= frame < seen + n:
            chosen = {**block, "cells": block["cells"][frame - seen], "coords": block["coords"][frame - seen]}
        seen += n
    if chosen is None:
        raise DpconvError(f"qe/pw/input: no frame {0 if frame is None else frame} to write (the system has {seen})")
    if chosen.get("nopbc"):
        raise DpconvError("qe/pw/input: the system has no cell (nopbc); give it a box before writing a pw.x input")
    text = render_input(
        list(chosen["atom_names"]),
        np.asarray(chosen["atom_types"]),
        np.asarray(chosen["cells"], float),
        np.asarray(chosen["coords"], float),
        **kwargs,
    )
    with open(path, "w") as fh:
        fh.write(text)
