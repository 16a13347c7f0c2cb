"""Which mouth shapes a phoneme may show: espeak-ng mnemonics → Rhubarb's shapes A–H, X.

The shapes are Rhubarb Lip Sync's (the Hanna-Barbera set):

    A closed (P B M)           B slightly open, teeth (K S T, EE)    C open (EH, AE)
    D wide open (AA)           E slightly rounded (AO, ER)           F puckered (UW, OW, W)
    G teeth on lip (F V)       H tongue up (long L)                  X idle / rest

espeak mnemonics are first mapped to the ARPAbet-style phones Rhubarb reasons about; the
phone rules, the effort order between shapes, the relaxed shapes for pauses and the
fallback of extended shapes to basic ones follow Rhubarb's animation rules, so our cues
look like Rhubarb's for the same speech.
"""

from __future__ import annotations

SHAPES = "ABCDEFGHX"
BASIC = {"A": "A", "B": "B", "C": "C", "D": "D", "E": "E", "F": "F", "G": "A", "H": "C", "X": "A"}
RELAXED = {"A": "A", "B": "B", "C": "B", "D": "C", "E": "C", "F": "B", "G": "X", "H": "B", "X": "X"}

# For each shape, every shape in ascending order of the effort to move there from it.
EFFORT = {
    "A": "AXGBCHEDF",
    "B": "BGAXCHEDF",
    "C": "CHBGDAXEF",
    "D": "DCHBGAXEF",
    "E": "ECHBGAXDF",
    "F": "FBGAXCHED",
    "G": "GABCHXEDF",
    "H": "HCBGDAXEF",
    "X": "XAGBCHEDF",
}

ANY = frozenset(SHAPES)

# espeak-ng English mnemonics (en, en-us, en-gb-x-rp…) → Rhubarb phones. Two phones share
# the phoneme's time as a diphthong does (60 % / 40 %): the r-coloured and centring vowels.
ESPEAK_PHONES: dict[str, tuple[str, ...]] = {
    # vowels
    "a": ("AE",), "aa": ("AE",), "a#": ("AH",), "a2": ("Schwa",), "A": ("AA",), "A:": ("AA",),
    "A@": ("AA", "ER"), "0": ("AA",), "0#": ("AA",), "V": ("AH",), "VR": ("AH",),
    "E": ("EH",), "e": ("EH",), "e@": ("EH", "ER"), "eI": ("EY",),
    "I": ("IH",), "I2": ("IH",), "I#": ("IH",), "IR": ("IH",), "i": ("IY",), "i:": ("IY",),
    "i@": ("IY", "ER"), "i@3": ("IY", "ER"),
    "O": ("AO",), "O:": ("AO",), "O2": ("AO",), "O@": ("AO", "ER"), "o@": ("AO", "ER"),
    "oU": ("OW",), "OI": ("OY",), "U": ("UH",), "u:": ("UW",), "U@": ("UH", "ER"),
    "3": ("ER",), "3:": ("ER",), "@": ("Schwa",), "@2": ("Schwa",), "@5": ("Schwa",), "@-": ("Schwa",),
    "@L": ("Schwa", "L"), "aI": ("AY",), "aI2": ("AY",), "aI@": ("AY", "ER"), "aI3": ("AY", "ER"),
    "aU": ("AW",), "aU@": ("AW", "ER"),
    # consonants
    "p": ("P",), "b": ("B",), "t": ("T",), "t#": ("T",), "t2": ("T",), "t[": ("T",), "d": ("D",), "d#": ("D",),
    "?": ("T",), "k": ("K",), "g": ("G",), "x": ("K",),
    "m": ("M",), "m-": ("M",), "n": ("N",), "n-": ("N",), "N": ("NG",),
    "f": ("F",), "v": ("V",), "T": ("TH",), "D": ("DH",), "s": ("S",), "z": ("Z",), "z#": ("Z",),
    "S": ("SH",), "Z": ("ZH",), "tS": ("CH",), "dZ": ("JH",), "h": ("HH",),
    "l": ("L",), "l/": ("L",), "l-": ("L",), "L": ("L",), "r": ("R",), "r-": ("R",), "*": ("R",),
    "w": ("W",), "w#": ("W",), "W": ("W",), "j": ("Y",),
    ";": ("Y",),  # the glide espeak puts between two vowels ("pre;amble")
}

# Other languages' mnemonics, by their first character (espeak's phoneme names share an
# ASCII alphabet across languages: "y" is a rounded close vowel, "R" a uvular r …).
FIRST_CHAR_PHONES: dict[str, str] = {
    "a": "AA", "A": "AA", "&": "AE", "e": "EH", "E": "EH", "i": "IY", "I": "IH", "o": "AO", "O": "AO",
    "0": "AA", "u": "UW", "U": "UH", "y": "UW", "Y": "UH", "V": "AH", "@": "Schwa", "3": "ER",
    "p": "P", "b": "B", "B": "B", "t": "T", "d": "D", "k": "K", "c": "K", "q": "K", "g": "G", "G": "G",
    "m": "M", "n": "N", "N": "NG", "J": "Y", "f": "F", "v": "V", "T": "TH", "D": "DH", "s": "S",
    "z": "Z", "S": "SH", "Z": "ZH", "C": "SH", "x": "K", "X": "HH", "h": "HH", "l": "L", "L": "L",
    "r": "R", "R": "R", "*": "R", "w": "W", "W": "W", "j": "Y",
}


def phones_for(mnemonic: str) -> tuple[str, ...]:
    """The Rhubarb phones an espeak phoneme mnemonic stands for (unknown ones: a schwa)."""
    phones = ESPEAK_PHONES.get(mnemonic)
    if phones is None:
        phones = (FIRST_CHAR_PHONES.get(mnemonic[:1], "Schwa"),)
    return phones


Rule = tuple[tuple[float, frozenset[str]], ...]  # (fraction of the phone where it starts, shapes)


def _one(shapes: str) -> Rule:
    return ((0.0, frozenset(shapes)),)


def _two(first: str, second: str) -> Rule:
    """A diphthong: the first shapes for 60 % of the phone, then the second (Rhubarb's split)."""
    return ((0.0, frozenset(first)), (0.6, frozenset(second)))


# Rhubarb's rule per phone. A set of several shapes means any of them fits; the caller
# picks the one nearest to its neighbours.
RULES: dict[str, Rule] = {
    "AO": _one("E"), "AA": _one("D"), "IY": _one("B"), "UW": _one("F"), "EH": _one("C"),
    "IH": _one("B"), "UH": _one("F"), "AE": _one("C"), "Schwa": _one("BC"),
    "EY": _two("C", "B"), "OW": _two("E", "F"), "OY": _two("E", "B"),
    # espeak's plosives span their closure, so the closed mouth is the phoneme itself
    "P": _one("A"), "B": _one("A"), "M": _one("A"),
    "T": _one("BF"), "D": _one("BF"), "K": _one("BCEFH"), "G": _one("BCEFH"),
    "CH": _one("BF"), "JH": _one("BF"), "F": _one("G"), "V": _one("G"),
    "TH": _one("BF"), "DH": _one("BF"), "S": _one("BF"), "Z": _one("BF"), "SH": _one("BF"), "ZH": _one("BF"),
    "HH": ((0.0, ANY),),  # think "m-hm": whatever the mouth is doing
    "N": _one("BCFH"), "NG": _one("BCEF"), "R": _one("BEF"), "Y": _one("BCF"), "W": _one("F"),
}

# Phones whose shapes depend on how long they last: (seconds, rule if shorter, rule if not).
TIMED_RULES: dict[str, tuple[float, Rule, Rule]] = {
    "AH": (0.20, _one("C"), _one("D")),
    "AY": (0.20, _two("C", "B"), _two("D", "B")),
    "AW": (0.30, _two("C", "E"), _two("D", "E")),
    "ER": (0.07, _one("BC"), _one("E")),
    "L": (0.20, _one("BEFH"), _one("H")),
}


def shape_sets(phone: str, duration: float) -> Rule:
    """Rhubarb's rule for a phone lasting `duration` seconds (unknown phones: a schwa's)."""
    timed = TIMED_RULES.get(phone)
    if timed is not None:
        limit, short, long = timed
        return short if duration < limit else long
    return RULES.get(phone, RULES["Schwa"])


def closest_shape(reference: str, shapes: frozenset[str]) -> str:
    """The shape in `shapes` that is least effort to reach from `reference`."""
    for shape in EFFORT[reference]:
        if shape in shapes:
            return shape
    raise ValueError(f"no shape in {sorted(shapes)}")


def pause_shape(previous: str, following: str, duration: float) -> str:
    """What the mouth does in a pause of `duration` s between two spoken shapes.

    Very short pauses hold the previous shape, short ones relax it (never into the next
    shape, which would look like a stutter), longer ones rest (X).
    """
    if duration < 0.12:
        return previous
    if duration <= 0.35:
        shape = previous
        while True:
            relaxed = RELAXED[shape]
            if relaxed != following:
                return relaxed
            if relaxed == shape:
                break
            shape = relaxed
    return "X"
