"""Bring text typed the way people type it to the conventions of the corpus a model learnt from.

Tatoeba's English sentences (the translator's sources) always start with a capital and end with
punctuation; a model that has seen nothing else loops on "where is the train station".
as_written_sentence brings typed input to that form at inference, names included: learn_casing
reads from the training sources which words are written with capitals ("Tom", "Boston", "TV").

rt-polarity (the sentiment data) goes the other way: lower-case, with punctuation split off by
spaces. as_spaced_lowercase brings any text to that form; the classifier applies it to its
training texts and to what it classifies alike, so "Great movie!" and "great movie !" are one input.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

FINAL_PUNCTUATION = ".!?…"
# Closing marks that may follow the final punctuation: 'He said "Go."'
CLOSING_MARKS = "\"')]}»”’"
# A sentence opening with one of these words asks something: "where is the station" ends with "?".
QUESTION_WORDS = frozenset("what where when why who whom whose which how".split())
# An auxiliary asks only when a subject follows it: "do you know" asks, "do it now" does not.
AUXILIARIES = frozenset(
    "am is are was were do does did have has had can could will would shall should may might must "
    "isn't aren't wasn't weren't don't doesn't didn't haven't hasn't can't couldn't won't wouldn't "
    "shouldn't".split()
)
SINGULAR_SUBJECTS = frozenset("he she it this that tom mary someone anyone everyone somebody anybody".split())
SUBJECTS = SINGULAR_SUBJECTS | frozenset("i you we they there these those the a an your his her my our their its".split())


# A word: letters and digits with the apostrophes, hyphens, slashes and brackets rt-polarity keeps
# against them ("doesn't", "too-tepid", "co-writer/director", "'who", "[sic]"); or a run of one
# other visible character ("!", "...", "!!!"). So rt-polarity's own texts come back unchanged (all
# but 78 of 10,662, which have "…", "&" or "$9" in them).
SPACED_TOKEN = re.compile(r"[\w'/\[\]-]+|([^\w\s'/\[\]-])\1*")
APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})


def as_spaced_lowercase(text: str) -> str:
    """Text as rt-polarity writes it: lower-case, typographic apostrophes made straight, and every
    punctuation mark a token of its own between single spaces. "Loved it, didn’t you?!" becomes
    "loved it , didn't you ? !"; text already written that way comes back unchanged."""
    return " ".join(token.group() for token in SPACED_TOKEN.finditer(text.translate(APOSTROPHES).lower()))


# A word for the casing table: letters only, so "tom's" is "tom" and "'s", and "i'm" is "i" and "'m".
CASED_WORD = re.compile(r"[^\W\d_]+")
# Between two words, one of these ends a sentence, so the next word's capital says nothing.
SENTENCE_END = re.compile(r"[.!?…]")
MIN_CASED_COUNT = 2  # a word is written with capitals when seen so at least this often


def learn_casing(sentences: Iterable[str]) -> dict[str, str]:
    """How the sentences write words that are not all lower-case: {"tom": "Tom", "tv": "TV"},
    for each word whose most frequent form away from the start of a sentence has capitals, is
    seen at least MIN_CASED_COUNT times and is more than half of that word's occurrences there.
    A typed "tom" then reads as the model has always seen it."""
    forms: dict[str, Counter] = defaultdict(Counter)
    for sentence in sentences:
        previous_end = None
        for match in CASED_WORD.finditer(sentence):
            starts_sentence = previous_end is None or SENTENCE_END.search(sentence, previous_end, match.start())
            previous_end = match.end()
            if not starts_sentence:
                forms[match.group().lower()][match.group()] += 1
    casing = {}
    for word, counts in forms.items():
        form, count = counts.most_common(1)[0]
        if form != word and count >= MIN_CASED_COUNT and count > sum(counts.values()) / 2:
            casing[word] = form
    return casing


def _first_words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())[:2]


def asks_a_question(text: str) -> bool:
    """Whether an English sentence without its final punctuation reads as a question."""
    words = _first_words(text)
    if not words:
        return False
    if words[0] in QUESTION_WORDS:
        return not (words[0] == "what" and len(words) > 1 and words[1] in ("a", "an"))  # "what a day"
    if words[0] in ("do", "don't") and len(words) > 1 and words[1] in SINGULAR_SUBJECTS:
        return False  # "do it now" commands; a question would say "does it"
    return words[0] in AUXILIARIES and len(words) > 1 and words[1] in SUBJECTS


def as_written_sentence(text: str, casing: Mapping[str, str] | None = None) -> str:
    """One line of English as a Tatoeba sentence is written: single spaces, a capital first letter,
    a capital pronoun "I", the words of casing (learn_casing) written as it says where they are
    typed in lower case, and final punctuation ("?" when it reads as a question, else ".") when
    the line has none. Text already written that way comes back unchanged (with casing: unless a
    word is in lower case where the training sources mostly give it capitals)."""
    text = " ".join(text.split())
    if not text:
        return text
    if casing:
        text = CASED_WORD.sub(lambda word: casing.get(word.group(), word.group()), text)
    text = re.sub(r"\bi\b(?=$|[\s'’.,!?;:])", "I", text)  # the pronoun is "I" wherever it stands
    text = text[0].upper() + text[1:]
    if text.rstrip(CLOSING_MARKS)[-1:] not in FINAL_PUNCTUATION:
        text += "?" if asks_a_question(text) else "."
    return text
