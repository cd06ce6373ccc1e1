"""Typed English is written the way the translator's training sentences are, and text already
written that way is left alone."""

import pytest

from charrnn.normalise import as_spaced_lowercase, as_written_sentence, asks_a_question, learn_casing


@pytest.mark.parametrize("typed,written", [
    ("where is the train station", "Where is the train station?"),
    ("she bought a red car", "She bought a red car."),
    ("Hello", "Hello."),
    ("do you know tom", "Do you know tom?"),
    ("do it now", "Do it now."),
    ("what a beautiful day", "What a beautiful day."),
    ("i think i'm late", "I think I'm late."),
    ("  too   many spaces  ", "Too many spaces."),
    ("is this yours", "Is this yours?"),
])
def test_typed_lines_become_sentences(typed, written):
    assert as_written_sentence(typed) == written


@pytest.mark.parametrize("sentence", [
    "Where is the train station?", "Tom said \"Go.\"", "Stop!", "I see… ", "It's 5 p.m.", "Why not?",
])
def test_written_sentences_are_unchanged(sentence):
    assert as_written_sentence(sentence) == sentence.strip()


def test_empty_and_blank_lines_stay_empty():
    assert as_written_sentence("") == "" and as_written_sentence("   ") == ""


def test_casing_is_learnt_where_a_capital_is_not_the_sentences_own():
    sentences = ["I like Paris.", "Paris is big. Cats sleep.", "We saw cats.", "Go to Paris!", "My iPad broke.",
                 "Her iPad works.", "The flash was bright.", "A Flash drive.", "A flash drive."]
    # "Cats" after a full stop and "The"/"A" opening a sentence teach nothing; "flash" is lower-case
    # more often than not; "I" is seen once only.
    assert learn_casing(sentences) == {"paris": "Paris", "ipad": "iPad"}


def test_typed_words_take_the_learnt_casing_and_written_ones_keep_theirs():
    casing = {"tom": "Tom", "boston": "Boston", "tv": "TV"}
    assert as_written_sentence("do you know tom", casing) == "Do you know Tom?"
    assert as_written_sentence("tom's tv is in boston", casing) == "Tom's TV is in Boston."
    assert as_written_sentence("tomorrow TOM sees Tv", casing) == "Tomorrow TOM sees Tv."  # whole words, lower-case only
    assert as_written_sentence("", casing) == ""


def test_questions_need_a_subject_after_an_auxiliary():
    assert asks_a_question("can you help me") and not asks_a_question("can of beans on the table")
    assert asks_a_question("how old are you") and not asks_a_question("")


@pytest.mark.parametrize("typed, spaced", [
    ("This movie was great!", "this movie was great !"),
    ("Loved it, didn’t you?!", "loved it , didn't you ? !"),
    ("not worth the price...", "not worth the price ..."),
    ("a too-tepid biopic -- sadly", "a too-tepid biopic -- sadly"),
    ("the co-writer/director's 'expanded vision'", "the co-writer/director's 'expanded vision'"),
    ("", ""),
])
def test_texts_become_rt_polaritys_spaced_lower_case(typed, spaced):
    assert as_spaced_lowercase(typed) == spaced
    assert as_spaced_lowercase(spaced) == spaced  # already in that form: unchanged


def test_rt_polaritys_own_texts_come_back_unchanged():
    # Lines in rt-polarity's form: what the classifier trains on must not change under it.
    for line in ["the rock is destined to be the 21st century's new \" conan \" and that he's going to make a splash .",
                 "effective but too-tepid biopic",
                 "an utterly compelling 'who wrote it' in which [schweiger] is . . . good -- really"]:
        assert as_spaced_lowercase(line) == line
