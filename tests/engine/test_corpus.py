"""Corpus reading, Bansal's cleaning, the vocabulary, the splits, and the study's own counts."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config.models import CorpusConfig
from engine.errors import UserError
from engine.lm.corpus import (
    EMBEDDED_DESCRIPTION,
    PAD,
    UNK,
    all_pairs,
    build_vocabulary,
    clean,
    load_corpus,
    split_documents,
    split_pairs,
)
from tests.conftest import nyt_file


def load(*paths, **settings):
    return load_corpus(CorpusConfig(paths=[str(path) for path in paths], **settings))


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# -- the study's numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("ArticlesApril2017.csv", (831, 2422, 4806, 19)), ("ArticlesApril2018.csv", (1214, 3494, 7803, 24))],
)
def test_study_counts_on_one_nyt_file(name, expected):
    stats = load(nyt_file(name)).stats
    assert (stats.documents, stats.vocab_size, stats.pairs, stats.longest) == expected


def test_study_counts_on_the_whole_nyt_folder(nyt_dir):
    corpus = load(nyt_dir)
    stats = corpus.stats
    assert (stats.documents, stats.vocab_size, stats.pairs, stats.longest) == (8603, 11265, 51770, 24)
    # only the nine Articles*.csv files, in name order
    assert [path.rsplit("/", 1)[-1] for path in corpus.sources] == sorted(p.name for p in nyt_dir.glob("Articles*.csv"))
    assert len(corpus.sources) == 9


def test_the_nyt_headline_column_is_found_and_unknown_rows_dropped():
    corpus = load(nyt_file("ArticlesApril2017.csv"))
    assert corpus.vocab[0] == PAD and UNK not in corpus.vocab
    assert "unknown" not in corpus.vocab[1:20]  # 'Unknown' rows are gone, not counted as a frequent word


# -- cleaning -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("U.S. Troops Head to a Well-Known Base", ["us", "troops", "head", "to", "a", "wellknown", "base"]),
        ("100% of_it: (really) [sure]?", ["100", "ofit", "really", "sure"]),
        ("Café—naïve", ["cafnave"]),  # non-ASCII characters are dropped, not replaced by a space
        ("Trump’s “Plan”", ["trumps", "plan"]),  # noqa: RUF001 - curly quotes are not string.punctuation: dropped as non-ASCII
        ("  tabs\tand   spaces \n", ["tabs", "and", "spaces"]),
        ("!!! ...", []),
    ],
)
def test_bansal_cleaning(text, tokens):
    assert clean(text) == tokens


def test_unknown_rows_are_dropped_in_text_and_csv(tmp_path):
    txt = write(tmp_path / "a.txt", "Unknown\nFirst real headline\n  Unknown  \nunknown stays when lowercase\n\n")
    corpus = load(txt)
    assert corpus.stats.documents == 2
    assert [[corpus.vocab[i] for i in doc] for doc in corpus.documents] == [
        ["first", "real", "headline"],
        ["unknown", "stays", "when", "lowercase"],
    ]
    csv_file = write(tmp_path / "a.csv", "id,headline\n1,Unknown\n2,A Real One Here\n3,Unknown\n")
    assert load(csv_file).stats.documents == 1


def test_short_documents_count_as_documents_but_yield_no_pair(tmp_path):
    corpus = load(write(tmp_path / "a.txt", "one\nthree words here\n!!!\n"))
    stats = corpus.stats
    assert (stats.documents, stats.pairs, stats.longest) == (3, 2, 3)
    assert all_pairs(corpus, range(3)).tolist() == [[1, 1], [1, 2]]


def test_several_paths_are_read_in_the_order_given(tmp_path):
    first = write(tmp_path / "b.txt", "bravo bravo\n")
    second = write(tmp_path / "a.txt", "alpha alpha alpha\n")
    corpus = load(first, second)
    assert [len(doc) for doc in corpus.documents] == [2, 3]
    assert corpus.sources == [str(first), str(second)]


def test_utf8_with_a_byte_order_mark_and_crlf_lines(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffheadline,n\r\nFirst Headline Here,1\r\nSecond One,2\r\n".encode("utf-8"))
    corpus = load(path)  # the BOM must not hide the 'headline' column
    assert [[corpus.vocab[i] for i in doc] for doc in corpus.documents] == [["first", "headline", "here"], ["second", "one"]]


def test_csv_quoted_fields_with_commas_and_newlines(tmp_path):
    path = write(tmp_path / "q.csv", 'headline,n\n"Peace, Then War\nand Peace",1\n"Plain headline",2\n')
    corpus = load(path)
    assert corpus.stats.documents == 2
    assert [corpus.vocab[i] for i in corpus.documents[0]] == ["peace", "then", "war", "and", "peace"]


# -- vocabulary -----------------------------------------------------------------------------------


def test_vocabulary_by_frequency_ties_by_first_appearance():
    docs = [["b", "a", "c"], ["a", "c", "d"], ["e", "d"]]
    # counts: a 2, c 2, d 2, b 1, e 1 — a, c, d tie (a seen first, then c, then d); b before e
    assert build_vocabulary(docs) == [PAD, "a", "c", "d", "b", "e"]


def test_vocabulary_of_a_file_maps_documents_to_indices(tmp_path):
    corpus = load(write(tmp_path / "a.txt", "the cat sat\nthe dog sat down\n"))
    assert corpus.vocab == [PAD, "the", "sat", "cat", "dog", "down"]
    assert corpus.documents == [[1, 3, 2], [1, 4, 2, 5]]
    assert corpus.unk_index is None


def test_max_vocab_counts_padding_and_unk():
    docs = [["b", "a", "c"], ["a", "c", "d"], ["e", "d"]]
    assert build_vocabulary(docs, max_vocab=4) == [PAD, UNK, "a", "c"]
    assert build_vocabulary(docs, min_count=2) == [PAD, UNK, "a", "c", "d"]
    assert build_vocabulary(docs, max_vocab=4, min_count=2) == [PAD, UNK, "a", "c"]


def test_rare_words_become_unk(tmp_path):
    corpus = load(write(tmp_path / "a.txt", "the cat sat\nthe dog sat down\n"), min_count=2)
    assert corpus.vocab == [PAD, UNK, "the", "sat"]
    assert corpus.unk_index == 1
    assert corpus.documents == [[2, 1, 3], [2, 1, 3, 1]]
    capped = load(write(tmp_path / "b.txt", "the cat sat\nthe dog sat down\n"), max_vocab=3)
    assert capped.vocab == [PAD, UNK, "the"] and capped.stats.vocab_size == 3


# -- splits -------------------------------------------------------------------------------------


def test_document_split_has_no_document_in_both_parts_and_is_reproducible(small_corpus):
    corpus = load(small_corpus)
    train, val = split_documents(corpus, 0.2, seed=7)
    usable = [i for i, doc in enumerate(corpus.documents) if len(doc) >= 2]
    assert not set(train) & set(val)
    assert sorted(train + val) == usable
    assert len(val) == round(0.2 * len(usable))
    assert split_documents(corpus, 0.2, seed=7) == (train, val)
    assert split_documents(corpus, 0.2, seed=8) != (train, val)


def test_document_split_skips_documents_without_a_pair(tmp_path):
    lines = ["lonely"] * 5 + [f"pair number {i}" for i in range(10)]
    corpus = load(write(tmp_path / "a.txt", "\n".join(lines)))
    train, val = split_documents(corpus, 0.3, seed=0)
    assert len(train) + len(val) == 10 and len(val) == 3
    assert all(len(corpus.documents[i]) >= 2 for i in train + val)


def test_document_split_refuses_a_corpus_too_small_to_hold_out(tmp_path):
    corpus = load(write(tmp_path / "a.txt", "just one headline\n"))
    with pytest.raises(UserError, match="1 usable documents, too few to hold out 20%"):
        split_documents(corpus, 0.2, seed=0)


def test_pair_split_is_the_studys_shuffled_cut(small_corpus):
    corpus = load(small_corpus)
    train, val = split_pairs(corpus, 0.2, seed=0)
    total = corpus.stats.pairs
    assert len(val) == round(0.2 * total) and len(train) + len(val) == total
    every = {tuple(row) for row in all_pairs(corpus, range(len(corpus.documents))).tolist()}
    assert {tuple(r) for r in train.tolist()} | {tuple(r) for r in val.tolist()} == every
    assert not {tuple(r) for r in train.tolist()} & {tuple(r) for r in val.tolist()}
    again_train, again_val = split_pairs(corpus, 0.2, seed=0)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert not np.array_equal(split_pairs(corpus, 0.2, seed=1)[1], val)


# -- CSV columns --------------------------------------------------------------------------------


def test_csv_column_auto_detect_finds_the_only_text_column(tmp_path):
    path = write(tmp_path / "t.csv", "id,title,views\n1,Markets Rally After Vote,30\n2,Storm Hits The Coast,12\n3,Unknown,4\n")
    corpus = load(path)
    assert corpus.stats.documents == 2
    assert [corpus.vocab[i] for i in corpus.documents[0]] == ["markets", "rally", "after", "vote"]


def test_csv_headline_wins_over_other_text_columns(tmp_path):
    path = write(tmp_path / "t.csv", "abstract,headline\nA long abstract of words,Short Headline Words\n")
    assert [load(path).vocab[i] for i in load(path).documents[0]] == ["short", "headline", "words"]


def test_csv_with_two_text_columns_and_no_headline_lists_the_columns(tmp_path):
    path = write(tmp_path / "t.csv", "title,body,n\nSome Title Words,Some body text here,1\n")
    with pytest.raises(UserError) as caught:
        load(path)
    message = str(caught.value)
    assert "no 'headline' column and no single text column" in message
    assert "--column" in message and "(columns: title, body, n)" in message


def test_csv_named_column_used_and_a_missing_one_lists_the_columns(tmp_path):
    path = write(tmp_path / "t.csv", "title,body\nSome Title Words,Some body text here\n")
    assert [load(path, column="body").vocab[i] for i in load(path, column="body").documents[0]] == [
        "some",
        "body",
        "text",
        "here",
    ]
    with pytest.raises(UserError, match=r"has no column 'headline'; its columns are: title, body\.$"):
        load(path, column="headline")


# -- folders and the embedded corpus ------------------------------------------------------------------


def test_a_folder_reads_only_articles_csvs_in_name_order(tmp_path):
    write(tmp_path / "ArticlesMay.csv", "headline\nMay Headline Here\n")
    write(tmp_path / "ArticlesApril.csv", "headline\nApril Headline Here\n")
    write(tmp_path / "CommentsApril.csv", "commentBody\nA reader comment that is long\n")
    corpus = load(tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in corpus.sources] == ["ArticlesApril.csv", "ArticlesMay.csv"]
    assert [corpus.vocab[i] for i in corpus.documents[0]] == ["april", "headline", "here"]


def test_a_folder_without_articles_reads_its_csv_and_txt_files(tmp_path):
    write(tmp_path / "b.txt", "second file words\n")
    write(tmp_path / "a.csv", "headline\nfirst file words\n")
    write(tmp_path / "notes.md", "not read at all\n")
    corpus = load(tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in corpus.sources] == ["a.csv", "b.txt"]


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"holds no .csv or .txt file"):
        load(tmp_path)


def test_the_embedded_corpus_loads_with_no_path():
    corpus = load_corpus(CorpusConfig())
    assert corpus.sources == [EMBEDDED_DESCRIPTION]
    assert "lee_background.cor" in EMBEDDED_DESCRIPTION and "gensim" in EMBEDDED_DESCRIPTION
    stats = corpus.stats
    assert stats.documents > 2000 and stats.vocab_size > 5000  # ~60,000 words of news cut into sentences
    assert corpus.vocab[:3] == [PAD, "the", "to"]
    assert corpus.fingerprint == load_corpus(CorpusConfig()).fingerprint


def test_fingerprint_is_of_the_cleaned_text(tmp_path):
    a = load(write(tmp_path / "a.txt", "The Cat, sat!\nA dog\n"))
    b = load(write(tmp_path / "b.txt", "the cat sat\na dog\n"))
    c = load(write(tmp_path / "c.txt", "the cat sat\na dog too\n"))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 64


# -- bad inputs -------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(UserError, match=rf"^Corpus path '{missing}' does not exist; check the path given to --corpus\.$"):
        load(missing)


def test_empty_corpus(tmp_path):
    path = write(tmp_path / "empty.txt", "")
    with pytest.raises(UserError, match=rf"Corpus file '{path}' is 0 bytes on disk \(empty"):
        load(path)


def test_corpus_with_no_two_token_document(tmp_path):
    path = write(tmp_path / "short.txt", "one\ntwo\n!!! ?\nUnknown\n")
    with pytest.raises(UserError, match="has no document of 2 or more words"):
        load(path)


def test_binary_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UserError, match=r"is binary, not text \(a NUL byte on line 1\); give a \.txt or \.csv file"):
        load(path)


def test_non_utf8_file_names_the_encoding(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Café au lait is served\nCrème brûlée too\n".encode("latin-1"))
    with pytest.raises(UserError) as caught:
        load(path)
    message = str(caught.value)
    assert "is not UTF-8 text (byte 0xe9 on line 1)" in message and "re-save it as UTF-8" in message


def test_unparseable_csv(tmp_path):
    path = write(tmp_path / "huge.csv", 'headline,n\n"' + "word " * 30000 + '",1\n')
    with pytest.raises(UserError, match="cannot be parsed"):
        load(path)
