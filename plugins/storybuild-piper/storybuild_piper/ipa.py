"""Piper's phonemes (espeak-ng IPA, one codepoint each) → timed phonemes and words.

Piper feeds its model one id per codepoint of espeak-ng's IPA ("h ə l ˈ o ʊ ,"), with a
pad after each, and the model decides how many audio frames every id lasts. This module
turns those per-codepoint sample counts into what timings.json holds:

* phonemes: codepoints grouped into sounds (``oʊ``, ``tʃ``, ``ɜː``, ``n̩``) and named with the
  espeak-ng mnemonics the viseme rules read (storybuild.backends.embedded.viseme_rules:
  ``oU``, ``tS``, ``3:``, ``n-``). A stress mark's time goes to the sound after it; spaces,
  punctuation and the sentence start/end are pauses, left out (gaps are silence).
* words: each sound goes to the whitespace token of the text it speaks (`sound_tokens`), and
  a word spans its sounds.

Pure Python: no numpy, nothing heavy.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Callable, Sequence

STRESS = frozenset("ˈˌ")
LENGTH = frozenset("ːˑ")
# Two codepoints espeak-ng writes for one sound: diphthongs and affricates.
PAIRS = frozenset({"aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "əʊ", "tʃ", "dʒ"})
BOUNDARY = frozenset(" ,.;:!?¡¿…—–-\"'()[]«»“”„^$")

# espeak-ng IPA → espeak-ng phoneme mnemonics (the en / en-us inventory, and the sounds
# other languages' voices use most), as viseme_rules.ESPEAK_PHONES and FIRST_CHAR_PHONES read them.
IPA_TO_MNEMONIC: dict[str, str] = {
    # vowels
    "ə": "@", "ɐ": "a#", "ɪ": "I", "ᵻ": "I#", "i": "i", "iː": "i:", "ɛ": "E", "e": "e", "eː": "e",
    "æ": "a", "a": "a", "aː": "aa", "ɑ": "A", "ɑː": "A:", "ɒ": "0", "ɔ": "O", "ɔː": "O:", "o": "O", "oː": "O:",
    "ʌ": "V", "ʊ": "U", "u": "u:", "uː": "u:", "ɜ": "3", "ɜː": "3:", "ɚ": "3", "ɝ": "3:", "əː": "3:",
    "eɪ": "eI", "aɪ": "aI", "aʊ": "aU", "oʊ": "oU", "əʊ": "oU", "ɔɪ": "OI",
    "y": "y", "yː": "y", "ø": "Y", "øː": "Y", "œ": "W", "ɨ": "i", "ɯ": "u:", "ɤ": "V", "ɵ": "@",
    # consonants
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "ɡ": "g", "g": "g", "q": "q", "c": "c", "ɟ": "g",
    "ʔ": "?", "ɾ": "t#", "ɽ": "r",
    "m": "m", "n": "n", "ŋ": "N", "ɲ": "J", "ɱ": "m",
    "f": "f", "v": "v", "θ": "T", "ð": "D", "s": "s", "z": "z", "ʃ": "S", "ʒ": "Z", "ç": "C",
    "x": "x", "ɣ": "x", "χ": "X", "ʁ": "R", "h": "h", "ɦ": "h", "β": "B", "ɸ": "f",
    "tʃ": "tS", "dʒ": "dZ", "ts": "ts", "dz": "dz",
    "l": "l", "ɫ": "l", "ɬ": "l", "ʎ": "L", "ɹ": "r", "r": "r", "ɻ": "r", "ʀ": "R",
    "w": "w", "ʍ": "w", "j": "j", "ɥ": "j",
    # syllabic consonants (n̩ is n + U+0329)
    "n̩": "n-", "l̩": "l-", "m̩": "m-",
}


@dataclass(frozen=True)
class Sound:
    """One sound of a sentence: its mnemonic, its IPA, and the model samples it spans."""

    start: int  # samples from the start of the line, at the model's rate
    end: int
    phoneme: str  # espeak mnemonic
    ipa: str
    word: int  # index of the IPA word (run between pauses) of the whole line


def mnemonic(ipa: str) -> str:
    """The espeak mnemonic for one IPA sound (unknown: its letters without diacritics, else a schwa)."""
    if ipa in IPA_TO_MNEMONIC:
        return IPA_TO_MNEMONIC[ipa]
    bare = "".join(ch for ch in unicodedata.normalize("NFD", ipa)
                   if not unicodedata.combining(ch) and ch not in LENGTH and ch not in "ʰʲʷˠˤ̃")
    if bare in IPA_TO_MNEMONIC:
        return IPA_TO_MNEMONIC[bare]
    if bare[:1] in IPA_TO_MNEMONIC:
        return IPA_TO_MNEMONIC[bare[:1]]
    return bare if bare.isascii() and bare.isalpha() else "@"


def _is_modifier(ch: str) -> bool:
    return ch in LENGTH or unicodedata.combining(ch) > 0 or unicodedata.category(ch) == "Lm" and ch not in STRESS


def group(phonemes: Sequence[str], samples: Sequence[int], offset: int, first_word: int) -> tuple[list[Sound], int]:
    """The sounds of one sentence.

    `phonemes` are the sentence's codepoints as Piper gives them; `samples[i]` is how many
    model samples phoneme i lasts (its ids and the pad after it); `offset` is where the
    sentence starts in the line. Returns the sounds and the next free word index.
    """
    sounds: list[list] = []  # [start, end, ipa, word]
    word = first_word
    in_word = False
    pending = None  # start of a stress mark's time, given to the sound after it
    at = offset
    for ph, n in zip(phonemes, samples):
        start, end = at, at + int(n)
        at = end
        if ph in STRESS:
            pending = start if pending is None else pending
            continue
        if ph in BOUNDARY or ph.isspace():
            if in_word:
                word += 1
                in_word = False
            pending = None
            continue
        if sounds and in_word and (_is_modifier(ph) or sounds[-1][2] + ph in PAIRS and pending is None):
            sounds[-1][1] = end
            sounds[-1][2] += ph
            continue
        sounds.append([start if pending is None else pending, end, ph, word])
        pending = None
        in_word = True
    if in_word:
        word += 1
    return [Sound(s, e, mnemonic(unicodedata.normalize("NFC", ipa)), unicodedata.normalize("NFC", ipa), w)
            for s, e, ipa, w in sounds], word


def tokens(text: str) -> list[str]:
    """Whitespace-separated tokens without the punctuation around them ("Hello," → "Hello")."""
    out = []
    for m in re.finditer(r"\S+", text):
        token = m.group()
        lo, hi = 0, len(token)
        while lo < hi and unicodedata.category(token[lo]).startswith("P"):
            lo += 1
        while hi > lo and unicodedata.category(token[hi - 1]).startswith("P"):
            hi -= 1
        out.append(token[lo:hi] or token)
    return out


def sound_tokens(text: str, sounds: Sequence[Sound], phonemize: Callable[[str], list[list[str]]]) -> list[int]:
    """For each sound of the line, the index of the whitespace token of `text` it speaks.

    espeak-ng reads most tokens as one word, but not all: "42" is two words, "—" none, and
    in context it may run words together ("Wait... what" → wˈeɪtwˌʌt) or read a token
    otherwise ("e.g." → "for example"). So each token is phonemized alone. When its word
    counts add up to the line's and every word sounds like its token, words map in order;
    otherwise the tokens' IPA is aligned with the line's letter by letter, each sound goes
    to the token its letters came from, and sounds no letter matched go to a token left
    without sounds between their neighbours' (else to the neighbour in their word).
    Tokens never go back: the result is non-decreasing.
    """
    toks = re.findall(r"\S+", text)
    if not toks or not sounds:
        return [0] * len(sounds)
    alone = [_word_letters([ph for sentence in phonemize(tok) for ph in (*sentence, " ")]) for tok in toks]
    by_word = _in_order(alone, sounds)
    if by_word is not None:
        return by_word
    iso = [(ch, t) for t, letters in enumerate(alone) for ch in letters if ch != " "]
    ctx = [(ch, i) for i, snd in enumerate(sounds) for ch in unicodedata.normalize("NFD", snd.ipa)]
    votes: list[dict[int, int]] = [{} for _ in sounds]
    matcher = SequenceMatcher(None, [c for c, _ in iso], [c for c, _ in ctx], autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            i, t = ctx[b + k][1], iso[a + k][1]
            votes[i][t] = votes[i].get(t, 0) + 1
    out: list[int | None] = []
    last = 0
    for v in votes:
        if v:
            last = max(last, max(v, key=lambda t: (v[t], -t)))  # never back to an earlier token
            out.append(last)
        else:
            out.append(None)
    i = 0
    while i < len(out):
        if out[i] is not None:
            i += 1
            continue
        j = i
        while j < len(out) and out[j] is None:
            j += 1
        before = out[i - 1] if i > 0 else -1
        after = out[j] if j < len(out) else len(toks)
        gap = list(range(before + 1, after))  # tokens no sound went to, between the run's neighbours
        run_words = sorted({sounds[k].word for k in range(i, j)})
        for k in range(i, j):
            if gap:
                out[k] = gap[min(run_words.index(sounds[k].word), len(gap) - 1)]
            elif before >= 0 and (sounds[k].word == sounds[i - 1].word or after >= len(toks)):
                out[k] = before
            elif after < len(toks) and (j < len(sounds) and sounds[k].word == sounds[j].word or before < 0):
                out[k] = after
            else:
                out[k] = max(before, 0)
        i = j
    return [int(t) for t in out]


def _word_letters(phonemes: Sequence[str]) -> list[str]:
    """The letters of a reading, a space between words (stress and punctuation dropped)."""
    out: list[str] = []
    for ph in phonemes:
        if ph in STRESS:
            continue
        if ph in BOUNDARY or ph.isspace():
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(ph)
    while out and out[-1] == " ":
        out.pop()
    return out


def _in_order(alone: Sequence[Sequence[str]], sounds: Sequence[Sound]) -> list[int] | None:
    """Tokens by word order, when the counts agree and each word sounds like its token; else None."""
    token_words: list[tuple[int, str]] = []
    for t, letters in enumerate(alone):
        token_words.extend((t, w) for w in "".join(letters).split())
    line_words: dict[int, str] = {}
    for snd in sounds:
        line_words[snd.word] = line_words.get(snd.word, "") + unicodedata.normalize("NFD", snd.ipa)
    order = sorted(line_words)
    if len(order) != len(token_words):
        return None
    for w, (_, letters) in zip(order, token_words):
        if SequenceMatcher(None, letters, line_words[w], autojunk=False).ratio() < 0.5:
            return None
    token_of = {w: t for w, (t, _) in zip(order, token_words)}
    return [token_of[snd.word] for snd in sounds]
