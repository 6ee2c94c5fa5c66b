"""A light, dependency-free guess of the language a prompt is written in.

Why a heuristic and not a package: the parser only needs to know "English or not" to warn that
the student is multilingual only if the chosen model is. Two signals suffice for that: the
Unicode script of the letters (Cyrillic, CJK, Arabic, ... are decisive) and, for Latin-script
text, which language's most frequent function words cover the most tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Unicode character-name prefixes -> language code (or script name where one script serves many).
_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("CJK UNIFIED", "zh"),
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("HANGUL", "ko"),
    ("CYRILLIC", "ru"),
    ("GREEK", "el"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("DEVANAGARI", "hi"),
    ("THAI", "th"),
    ("BENGALI", "bn"),
    ("TAMIL", "ta"),
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The most frequent function words of each Latin-script language we recognise.
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the a an of to and in is it that for on with as be this are or by from at into each "
        "given write return rewrite output input text sentence classify translate summarize "
        "summarise answer extract convert fix generate question"
    ),
    "fr": _words(
        "le la les un une des de du et est en que qui pour dans sur avec ce cette au aux par "
        "phrase texte écrivez traduisez donnez"
    ),
    "de": _words(
        "der die das ein eine und ist in zu den dem mit für von auf nicht ich sie es im satz "
        "text schreibe übersetze gib"
    ),
    "es": _words(
        "el la los las un una de del y es en que para con por se su al lo como frase texto "
        "escribe traduce"
    ),
    "it": _words(
        "il lo la gli le un una di del della e è in che per con su non si al frase testo "
        "scrivi traduci"
    ),
    "pt": _words(
        "o a os as um uma de do da e é em que para com por não se ao no na frase texto "
        "escreva traduza"
    ),
    "nl": _words(
        "de het een en is van in dat op te met voor niet zijn er aan zin tekst schrijf vertaal"
    ),
}

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    """Best-guess ISO 639-1 code of `text`, or "und" when there is too little to tell.

    Non-Latin scripts win when they make up at least 30% of the letters; otherwise the
    Latin-script language whose function words cover the most tokens wins (ties favour English).
    """
    script = _dominant_script(text)
    if script:
        return script
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 2:
        return "und"
    hits = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(hits, key=lambda lang: (hits[lang], lang == "en"))
    return best if hits[best] > 0 else "und"


def _dominant_script(text: str) -> str | None:
    counts: Counter[str] = Counter()
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        name = unicodedata.name(ch, "")
        for prefix, lang in _SCRIPTS:
            if name.startswith(prefix):
                counts[lang] += 1
                break
    if not counts or letters == 0:
        return None
    lang, n = counts.most_common(1)[0]
    if counts.get("ja") and lang == "zh":
        lang = "ja"  # Japanese mixes kanji (CJK) with kana: any kana means Japanese
    return lang if n / letters >= 0.3 else None
