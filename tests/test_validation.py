"""chatlab.validation: what the server accepts from a client, and the reason
it gives when it does not. Plain values in, cleaned values or Refused out."""

from __future__ import annotations

import dataclasses
import unicodedata

import pytest

from chatlab import validation
from chatlab.validation import (
    Limits, Refused, check_message, check_message_id, check_name, check_resume, check_room,
    describe, name_key)

pytestmark = pytest.mark.unit


EMOJI = "\U0001f600"  # one character, four bytes in UTF-8, two UTF-16 units
LABELS = [pytest.param(check_name, "the user name", 32, id="name"),
          pytest.param(check_room, "the room name", 32, id="room")]


def refusal(check, *args) -> str:
    with pytest.raises(Refused) as caught:
        check(*args)
    assert caught.value.reason == str(caught.value)
    assert caught.value.retry_after is None, "bad input does not get better by waiting"
    return caught.value.reason


@pytest.mark.parametrize("value,described", [
    (None, "null"), (True, "a boolean"), (False, "a boolean"), (0, "a number"),
    (2.5, "a number"), ("", "a string"), ([], "a list"), ((1,), "a list"),
    ({}, "an object"), (b"\x00", "bytes"), (bytearray(), "bytearray"),
])
def test_describe_names_json_types_as_javascript_does(value, described):
    assert describe(value) == described


def test_limits_default_and_cannot_be_changed_in_place():
    limits = Limits()
    assert (limits.name, limits.message, limits.room) == (32, 2000, 32)
    assert (limits.events_per_second, limits.burst) == (20, 40)
    assert limits.http_buffer_size == 64 * 1024
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.name = 5  # type: ignore[misc]


# -- user and room names --------------------------------------------------------


@pytest.mark.parametrize("check,what,limit", LABELS)
def test_labels_are_trimmed(check, what, limit):
    assert check("  ann \t") == "ann"
    assert check("ann lee") == "ann lee", "inner spaces stay"
    assert check("\u3000ann\u00a0") == "ann", "Unicode spaces are trimmed too"


@pytest.mark.parametrize("check,what,limit", LABELS)
def test_label_limits_count_characters_after_trimming(check, what, limit):
    assert check("n" * limit) == "n" * limit
    assert check(" " * 10 + "n" * limit + " " * 10) == "n" * limit
    assert refusal(check, "n" * (limit + 1)) == (
        f"{what} is {limit + 1} characters long; the limit is {limit}")
    # Characters, not bytes or UTF-16 units: 32 emoji are 128 bytes.
    assert check(EMOJI * limit) == EMOJI * limit
    assert "the limit is" in refusal(check, EMOJI * (limit + 1))


@pytest.mark.parametrize("check,what,limit", LABELS)
def test_labels_follow_the_limits_given(check, what, limit):
    tight = Limits(name=3, room=3)
    assert check("abc", tight) == "abc"
    assert refusal(check, "abcd", tight) == f"{what} is 4 characters long; the limit is 3"


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value,described", [
    (None, "null"), (7, "a number"), (True, "a boolean"), (["ann"], "a list"),
    ({"name": "ann"}, "an object"), (b"ann", "bytes"),
])
def test_labels_must_be_strings(check, what, limit, value, described):
    assert refusal(check, value) == f"{what} must be a string, not {described}"


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value", ["", " ", "\t\n ", "\u3000"])
def test_blank_labels_are_empty(check, what, limit, value):
    assert refusal(check, value) == f"{what} must not be empty"


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value,code", [
    ("a\x00b", "0000"), ("a\x1bb", "001B"), ("a\x7fb", "007F"), ("a\tb", "0009"),
    ("a\nb", "000A"), ("a\x85b", "0085"),
])
def test_labels_refuse_control_characters(check, what, limit, value, code):
    assert refusal(check, value) == f"{what} contains the control character U+{code}"


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value", ["a\ud83db", "\ude00x", "x\ud83d"])
def test_labels_refuse_unpaired_surrogates(check, what, limit, value):
    # What a JavaScript string cut in the middle of an emoji becomes.
    assert refusal(check, value) == f"{what} contains an unpaired surrogate (invalid UTF-16)"


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value", [
    "\u200b", "\u200b\u200d", "\ufeff", "\u2060", "\u0301", "\u200e\u200f", "\u00ad",
    "\u3164", "\u2800\u2800",
])
def test_labels_need_a_visible_character(check, what, limit, value):
    # None of these is white space to str.strip(), and none shows.
    assert refusal(check, value) == f"{what} has no visible character"


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value", ["e\u0301", "7", "?", EMOJI, "\u00e9l\u00e8ve", "\u674e"])
def test_labels_with_one_visible_character_pass(check, what, limit, value):
    assert check(value) == value


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value,character", [
    ("\u202enimda", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("ad\u200bmin", "U+200B (ZERO WIDTH SPACE)"),
    ("ad\u200dmin", "U+200D (ZERO WIDTH JOINER)"),
    ("ad\u200cmin", "U+200C (ZERO WIDTH NON-JOINER)"),
    ("\u200dann", "U+200D (ZERO WIDTH JOINER)"),
    ("ann\u2067x\u2069", "U+2067 (RIGHT-TO-LEFT ISOLATE)"),
    ("\u200fann", "U+200F (RIGHT-TO-LEFT MARK)"),
    ("\ufeffann", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
    ("an\u00adn", "U+00AD (SOFT HYPHEN)"),
    ("an\u2060n", "U+2060 (WORD JOINER)"),
    ("a\u2061b", "U+2061 (FUNCTION APPLICATION)"),
    ("a\u180eb", "U+180E (MONGOLIAN VOWEL SEPARATOR)"),
    ("ann\U000e0041", "U+E0041 (TAG LATIN CAPITAL LETTER A)"),
    ("\u3164ann", "U+3164 (HANGUL FILLER)"),
])
def test_labels_refuse_invisible_characters(check, what, limit, value, character):
    # Each would let a name pass for another, or reorder the text after it.
    assert refusal(check, value) == f"{what} contains the invisible character {character}"


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value", [
    "\U0001f469\u200d\U0001f4bb",                       # woman technologist
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 ann",   # family
    "\U0001f3f3\ufe0f\u200d\U0001f308",                 # rainbow flag
    "\U0001f44b\U0001f3fd\u200d\u2642",                 # a skin tone, then a sign
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with ZWNJ
    "\u0915\u094d\u200d\u0937",                         # Devanagari, with ZWJ
    "\u0600\u0661\u0662",                                # the Arabic number sign shows
])
def test_labels_keep_the_joiners_and_signs_real_names_need(check, what, limit, value):
    assert check(value) == value


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value,scripts,odd", [
    ("\u0430dmin", "Latin and Cyrillic", "'\u0430' is U+0430 (CYRILLIC SMALL LETTER A)"),
    ("p\u0430yp\u0430l", "Latin and Cyrillic", "'\u0430' is U+0430 (CYRILLIC SMALL LETTER A)"),
    ("\u0391dmin", "Latin and Greek", "'\u0391' is U+0391 (GREEK CAPITAL LETTER ALPHA)"),
    ("ann \u0441\u0430t", "Cyrillic and Latin", "'t' is U+0074 (LATIN SMALL LETTER T)"),
])
def test_labels_refuse_words_that_mix_look_alike_scripts(check, what, limit, value, scripts, odd):
    assert refusal(check, value) == (
        f"{what} mixes {scripts} letters in one word, so it could pass for another name: {odd}")


@pytest.mark.parametrize("check,what,limit", LABELS)
@pytest.mark.parametrize("value", [
    "Ivan \u0418\u0432\u0430\u043d\u043e\u0432",  # one script in each word
    "\u1f08\u03bb\u03ad\u03be\u03b1\u03bd\u03b4\u03c1\u03bf\u03c2",  # all Greek
    "\uff21\uff24\uff2d\uff29\uff2e",  # full-width Latin is Latin
    "ann\u674e", "r2d2",
])
def test_labels_of_one_script_per_word_pass(check, what, limit, value):
    assert check(value) == value


# -- which names are the same ---------------------------------------------------


@pytest.mark.parametrize("alike", [
    "admin", "ADMIN", "Admin", "\uff21\uff24\uff2d\uff29\uff2e",  # full width
    "\U0001d41a\U0001d41d\U0001d426\U0001d422\U0001d427",  # mathematical bold
    "admin\ufe0f", "adm\u034fin", "admin\u200b",  # ignorable characters
])
def test_names_that_look_the_same_have_the_same_key(alike):
    assert name_key(alike) == "admin"


@pytest.mark.parametrize("one,other", [
    ("ann lee", "ANN\u3000 LEE"), ("\u00e9l\u00e8ve", "e\u0301le\u0300ve"),
    ("stra\u00dfe", "STRASSE"),
    ("\ufb01le", "file"), ("\U0001f469\u200d\U0001f4bb", "\U0001f469\U0001f4bb"),
])
def test_keys_ignore_width_case_composition_and_spacing(one, other):
    assert name_key(one) == name_key(other)


@pytest.mark.parametrize("one,other", [
    ("admin", "adm\u00edn"), ("ann", "anne"), ("ann lee", "annlee")])
def test_names_that_look_different_have_different_keys(one, other):
    assert name_key(one) != name_key(other)


# -- messages ---------------------------------------------------------------------


def test_a_message_is_kept_as_sent():
    assert check_message("  indented\n\tand tabbed  ") == "  indented\n\tand tabbed  "


def test_the_message_limit_counts_every_character_including_spaces():
    assert check_message("m" * 2000) == "m" * 2000
    assert refusal(check_message, "m" * 2001) == (
        "the message is 2001 characters long; the limit is 2000")
    assert refusal(check_message, " " + "m" * 2000) == (
        "the message is 2001 characters long; the limit is 2000")
    assert check_message(EMOJI * 2000) == EMOJI * 2000
    assert "the limit is 2000" in refusal(check_message, EMOJI * 2001)
    assert check_message("ab", Limits(message=2)) == "ab"
    assert "the limit is 2" in refusal(check_message, "abc", Limits(message=2))


@pytest.mark.parametrize("value,described", [
    (None, "null"), (3, "a number"), (False, "a boolean"), (["hi"], "a list"),
    ({"message": "hi"}, "an object"),
])
def test_a_message_must_be_a_string(value, described):
    assert refusal(check_message, value) == f"the message must be a string, not {described}"


@pytest.mark.parametrize("value", ["", " ", "\n\n", "\t \r\n"])
def test_a_blank_message_is_empty(value):
    assert refusal(check_message, value) == "the message must not be empty"


def test_a_message_may_hold_newlines_and_tabs_but_no_other_control_character():
    assert check_message("one\ntwo\tthree") == "one\ntwo\tthree"
    assert refusal(check_message, "one\rtwo") == (
        "the message contains the control character U+000D")
    assert refusal(check_message, "bell\x07") == (
        "the message contains the control character U+0007")


def test_a_message_refuses_unpaired_surrogates():
    assert refusal(check_message, "half an emoji: \ud83d") == (
        "the message contains an unpaired surrogate (invalid UTF-16)")


@pytest.mark.parametrize("value", [
    "\u200b", "\u200b\n\u200b", "\ufeff\u2060", "\u0301\u0301", "\u3164", "\u2800"])
def test_a_message_needs_a_visible_character(value):
    assert refusal(check_message, value) == "the message has no visible character"


@pytest.mark.parametrize("value", [
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",          # ZWJ: one family emoji
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",      # ZWNJ in Persian
    "\u05e9\u05dc\u05d5\u05dd 123\u200f!",                 # RLM in Hebrew
    "\u0645\u0631\u062d\u0628\u0627 \u061c(1)",              # ALM in Arabic
    "see \u2067\u05e9\u05dc\u05d5\u05dd\u2069 here",       # an isolate
    "ad\u200bmin, hyphen\u00adation, \ufeffBOM",            # invisible but harmless
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland
])
def test_a_message_keeps_the_invisible_characters_real_text_needs(value):
    assert check_message(value) == value


@pytest.mark.parametrize("value,character", [
    ("\u202aa", "U+202A (LEFT-TO-RIGHT EMBEDDING)"),
    ("\u202ba", "U+202B (RIGHT-TO-LEFT EMBEDDING)"),
    ("a\u202c", "U+202C (POP DIRECTIONAL FORMATTING)"),
    ("\u202dabc", "U+202D (LEFT-TO-RIGHT OVERRIDE)"),
    ("pay 1\u202e0001", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
])
def test_a_message_refuses_bidirectional_embeddings_and_overrides(value, character):
    assert refusal(check_message, value) == (
        f"the message contains the bidirectional control {character}, which can make it "
        "read differently from what was sent; for right-to-left text use the marks "
        "U+200E and U+200F, or the isolates U+2066 to U+2069")


def test_a_message_is_scanned_for_exactly_the_characters_its_rules_look_at():
    """check_message() looks at a message character by character only when
    one scan finds a control character, a surrogate or an embedding in it,
    and at its visibility only when it has no printable ASCII."""
    looked_at = {chr(code) for code in range(0x110000)
                 if unicodedata.category(chr(code)) in ("Cc", "Cs")} | set("\u202a\u202b\u202c\u202d\u202e")
    scanned = {chr(code) for code in range(0x110000)
               if validation._MESSAGE_SUSPECTS.match(chr(code))}
    assert scanned == looked_at
    for char in map(chr, range(0x21, 0x7f)):
        assert validation._ASCII_VISIBLE.match(char)
        validation._check_visible(char, "it")  # visible: no refusal


# -- message ids --------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "a", "x" * 64, "3f2b8c1e-4d5a-4b6c-9d7e-0f1a2b3c4d5e", "Zx9_sid-17", "!~", "0",
])
def test_message_ids_of_visible_ascii_pass(value):
    assert check_message_id(value) == value


def test_no_message_id_is_none():
    assert check_message_id(None) is None


@pytest.mark.parametrize("value", [
    "", "x" * 65, "has space", "tab\there", "caf\u00e9", EMOJI, "del\x7f", "new\nline",
])
def test_message_ids_of_other_characters_are_refused(value):
    assert refusal(check_message_id, value) == (
        "the message id must be 1 to 64 visible ASCII characters "
        "(letters, digits, punctuation; no spaces)")


@pytest.mark.parametrize("value,described", [
    (1, "a number"), (1.0, "a number"), (True, "a boolean"), (["a"], "a list"), ({}, "an object"),
])
def test_message_ids_must_be_strings(value, described):
    assert refusal(check_message_id, value) == f"the message id must be a string, not {described}"


# -- resuming: the connect auth ---------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "chat", 3, ["chat"], {}, {"token": "x"}])
def test_without_resume_fields_there_is_nothing_to_resume(auth):
    assert check_resume(auth) == (None, None)


def test_a_chat_id_and_offset_are_returned():
    assert check_resume({"chat": "a1b2", "serverOffset": 7}) == ("a1b2", 7)
    assert check_resume({"serverOffset": 0}) == (None, 0)
    assert check_resume({"chat": "a1b2"}) == ("a1b2", None)
    assert check_resume({"chat": None, "serverOffset": None}) == (None, None)


@pytest.mark.parametrize("offset,expected", [(3.0, 3), (0.0, 0), (1e6, 1_000_000)])
def test_a_whole_float_offset_is_a_whole_number(offset, expected):
    # JavaScript sends 3 as 3 but may have computed it as 3.0.
    _, resumed = check_resume({"serverOffset": offset})
    assert resumed == expected and type(resumed) is int


@pytest.mark.parametrize("offset,shown", [
    (-1, "-1"), (-1.0, "-1.0"), (3.5, "3.5"), (float("nan"), "nan"), (float("inf"), "inf"),
    (True, "a boolean"), (False, "a boolean"), ("3", "a string"), ([3], "a list"),
    ({"n": 3}, "an object"),
])
def test_other_offsets_are_refused(offset, shown):
    assert refusal(check_resume, {"serverOffset": offset}) == (
        "auth.serverOffset must be a whole number of at least 0 "
        f"(the last offset this client saw), not {shown}")


@pytest.mark.parametrize("chat,shown", [
    ("", "a string of other characters"), ("has space", "a string of other characters"),
    ("x" * 65, "a string of other characters"), ("caf\u00e9", "a string of other characters"),
    (5, "a number"), (True, "a boolean"), (["a"], "a list"), ({"id": "a"}, "an object"),
])
def test_bad_chat_ids_are_refused(chat, shown):
    assert refusal(check_resume, {"chat": chat, "serverOffset": 1}) == (
        f"auth.chat must be a chat id as the server sent it in history, not {shown}")
