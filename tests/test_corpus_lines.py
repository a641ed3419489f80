"""read_corpus splits a corpus file into documents on "\\n" only: Unicode line separators are text."""

import pytest

from tfptm.data.corpus import read_corpus

SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


@pytest.mark.parametrize("separator", SEPARATORS, ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_a_unicode_line_separator_stays_inside_its_document(tmp_path, separator):
    path = tmp_path / "corpus.txt"
    path.write_bytes(f"first half{separator}second half\nanother document".encode("utf-8"))
    corpus = read_corpus(path)
    assert len(corpus.documents) == 2
    assert corpus.documents[0].startswith("first half") and corpus.documents[0].endswith("second half")
    assert corpus.documents[1] == "another document"
    assert corpus.skipped == 0


def test_windows_line_endings_and_blank_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("one\u2028line\r\n\r\ntwo\r\nthree".encode("utf-8"))
    corpus = read_corpus(path)
    assert corpus.documents == ["one line", "two", "three"] and corpus.skipped == 1


def test_the_final_newline_is_not_a_blank_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the cat sat\n\nthe dog ran\n", encoding="utf-8")
    corpus = read_corpus(path)
    assert corpus.documents == ["the cat sat", "the dog ran"] and corpus.skipped == 1
