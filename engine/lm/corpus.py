"""Read text corpora, clean them as the study did, build the vocabulary, split and count.

Inputs: ``.txt`` files (one document a line), ``.csv`` files (one column holds the text) and
folders of them. With no path at all, the embedded default corpus: the Lee news corpus
(``lee_background.cor``: 300 Australian news documents, about 60,000 words) that gensim ships
and documents in its test data, read from the installed package, never downloaded, and cut into
sentences so that its documents are headline-sized like the study's.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import re
import stat
import string
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.config.models import CorpusConfig
from engine.errors import UserError
from engine.safe_io import read_lines

PAD = "<pad>"
UNK = "<unk>"
UNKNOWN_PLACEHOLDER = "Unknown"
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_SNIFF_ROWS = 200
MAX_LINE_BYTES = 2**20
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def clean(text: str) -> list[str]:
    """Bansal's cleaning: delete ``string.punctuation``, lowercase, drop non-ASCII, split on whitespace."""
    text = text.translate(_PUNCTUATION).lower()
    return text.encode("utf8").decode("ascii", "ignore").split()


def split_sentences(text: str) -> list[str]:
    """Cut running prose into sentences at '.', '!' or '?' followed by space and a capital or quote."""
    return [part for part in _SENTENCE_END.split(text) if part.strip()]


def embedded_corpus_path() -> Path:
    """Where the installed gensim package keeps the Lee background corpus."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise UserError(
            "The embedded corpus comes with the gensim package, which is not installed; run pip install gensim or pass --corpus PATH."
        )
    path = Path(spec.origin).parent / "test" / "test_data" / "lee_background.cor"
    if not path.is_file():
        raise UserError(
            f"The embedded corpus is missing from the gensim install ({path}); reinstall gensim or pass --corpus PATH."
        )
    return path


EMBEDDED_DESCRIPTION = (
    "Lee news corpus (lee_background.cor, shipped with gensim): 300 Australian news documents, one sentence a document"
)


@dataclass(frozen=True)
class CorpusStats:
    """The study's counts: documents kept, vocabulary (+1 for padding), pairs, longest document."""

    documents: int
    vocab_size: int
    pairs: int
    longest: int


@dataclass
class Corpus:
    """A cleaned corpus as token ids, with its vocabulary (index 0 is padding)."""

    documents: list[list[int]]
    vocab: list[str]
    sources: list[str]
    fingerprint: str

    @property
    def stats(self) -> CorpusStats:
        return CorpusStats(
            documents=len(self.documents),
            vocab_size=len(self.vocab),
            pairs=sum(max(len(doc) - 1, 0) for doc in self.documents),
            longest=max((len(doc) for doc in self.documents), default=0),
        )

    @property
    def unk_index(self) -> int | None:
        return 1 if len(self.vocab) > 1 and self.vocab[1] == UNK else None


def load_corpus(config: CorpusConfig) -> Corpus:
    """Read, clean and index the corpus that ``config`` names; :class:`UserError` on bad input."""
    if config.paths:
        files = _expand(config.paths)
        texts = [text for path in files for text in _read_texts(path, config.column)]
    else:
        files = [embedded_corpus_path()]
        texts = [sentence for document in _read_texts(files[0], None) for sentence in split_sentences(document)]
    token_docs = [clean(text) for text in texts]
    if not any(len(doc) >= 2 for doc in token_docs):
        named = ", ".join(str(path) for path in files)
        raise UserError(f"The corpus {named} has no document of 2 or more words; give a corpus with real text.")
    vocab = build_vocabulary(token_docs, config.max_vocab, config.min_count)
    index = {word: i for i, word in enumerate(vocab)}
    if UNK in index:  # rarer words were cut from the vocabulary: they become <unk>
        unk = index[UNK]
        documents = [[index.get(word, unk) for word in doc] for doc in token_docs]
    else:  # every word has its own index
        documents = [[index[word] for word in doc] for doc in token_docs]
    return Corpus(
        documents=documents,
        vocab=vocab,
        sources=[str(path) for path in files] if config.paths else [EMBEDDED_DESCRIPTION],
        fingerprint=fingerprint(token_docs),
    )


def build_vocabulary(token_docs: list[list[str]], max_vocab: int | None = None, min_count: int = 1) -> list[str]:
    """Index 0 is padding; words follow by frequency, ties by first appearance (as Keras's Tokenizer).

    With ``max_vocab`` (total size, padding and ``<unk>`` included) or ``min_count`` > 1, index 1
    is ``<unk>`` and rarer words map to it.
    """
    counts = Counter(word for doc in token_docs for word in doc)
    ranked = [word for word, _ in sorted(counts.items(), key=lambda item: -item[1])]
    if max_vocab is None and min_count == 1:
        return [PAD, *ranked]
    kept = [word for word in ranked if counts[word] >= min_count]
    if max_vocab is not None:
        kept = kept[: max_vocab - 2]
    return [PAD, UNK, *kept]


def fingerprint(token_docs: list[list[str]]) -> str:
    """sha256 of the cleaned documents, one per line: the identity of what a run trained on."""
    digest = hashlib.sha256()
    for doc in token_docs:
        digest.update(" ".join(doc).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def split_documents(corpus: Corpus, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and validation document indices: trainable documents shuffled with ``seed`` and cut."""
    usable = [i for i, doc in enumerate(corpus.documents) if len(doc) >= 2]
    order = np.random.default_rng(seed).permutation(len(usable))
    n_val = round(len(usable) * val_fraction)
    if n_val < 1 or n_val >= len(usable):
        raise UserError(
            f"The corpus has {len(usable)} usable documents, too few to hold out {val_fraction:.0%} for validation; "
            "give a larger corpus or another --val-fraction."
        )
    shuffled = [usable[i] for i in order]
    return sorted(shuffled[n_val:]), sorted(shuffled[:n_val])


def split_pairs(corpus: Corpus, val_fraction: float, seed: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The study's split: every (document, target position) pair shuffled with ``seed`` and cut.

    Returns two int arrays of shape (n, 2): document index and the target's position in it (the
    prefix is everything before it).
    """
    pairs = all_pairs(corpus, range(len(corpus.documents)))
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_val = round(len(pairs) * val_fraction)
    if n_val < 1 or n_val >= len(pairs):
        raise UserError(f"The corpus has {len(pairs)} pairs, too few to hold out {val_fraction:.0%}; give a larger corpus.")
    shuffled = pairs[order]
    return shuffled[n_val:], shuffled[:n_val]


def all_pairs(corpus: Corpus, doc_indices: Iterable[int]) -> npt.NDArray[np.int64]:
    """(document, target position) for every next-word prediction in the given documents."""
    rows = [(d, t) for d in doc_indices for t in range(1, len(corpus.documents[d]))]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def _expand(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise UserError(f"Corpus path {raw!r} does not exist; check the path given to --corpus.")
        if path.is_dir():
            files.extend(_folder_files(path))
        else:
            _check_not_empty(path)
            files.append(path)
    return files


def _check_not_empty(path: Path) -> None:
    """Refuse a regular file that says it holds nothing: an empty file, or a kernel file (``/proc``, ``/sys``) whose
    size reads 0 whatever it yields."""
    try:
        info = path.stat()
    except OSError as error:
        raise UserError(f"Corpus file {str(path)!r} cannot be read ({error.strerror}); check its permissions.") from None
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:  # FIFOs and devices are refused when opened
        raise UserError(
            f"Corpus file {str(path)!r} is 0 bytes on disk (empty, or a kernel file such as /proc's, which is not text); "
            "give a .txt or .csv file of the text to train on."
        )


def _folder_files(folder: Path) -> list[Path]:
    """A folder's CSV and text files in name order; only ``Articles*.csv`` where those exist.

    The Kaggle nyt-comments folder holds ``Articles*.csv`` (headlines) beside ``Comments*.csv``
    (reader comments); the study trained on the former.
    """
    articles = sorted(folder.glob("Articles*.csv"))
    found = articles or sorted(p for p in folder.iterdir() if p.suffix.lower() in (".csv", ".txt") and p.is_file())
    if not found:
        raise UserError(f"Corpus folder {str(folder)!r} holds no .csv or .txt file; point --corpus at the files themselves.")
    return found


def _read_texts(path: Path, column: str | None) -> list[str]:
    lines = _text_lines(path)
    if path.suffix.lower() == ".csv":
        return _csv_texts(path, lines, column)
    return [line for line in lines if line.strip() and line.strip() != UNKNOWN_PLACEHOLDER]


def _text_lines(path: Path) -> Iterator[str]:
    """A corpus file's lines, streamed: a regular file of UTF-8 text with no line over ``MAX_LINE_BYTES``."""
    try:
        for number, data in read_lines(path, "Corpus file", MAX_LINE_BYTES, follow_links=True):
            if b"\x00" in data:
                raise UserError(
                    f"Corpus file {str(path)!r} is binary, not text (a NUL byte on line {number}); give a .txt or .csv file."
                )
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise UserError(
                    f"Corpus file {str(path)!r} is not UTF-8 text (byte 0x{data[error.start]:02x} on line {number}); "
                    "re-save it as UTF-8, e.g. with iconv -t UTF-8."
                ) from None
            yield text.removeprefix("\ufeff") if number == 1 else text
    except OSError as error:
        raise UserError(f"Corpus file {str(path)!r} cannot be read ({error.strerror}); check its permissions.") from None


def _csv_texts(path: Path, lines: Iterator[str], column: str | None) -> list[str]:
    try:
        reader = csv.DictReader(line + "\n" for line in lines)
        columns = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as error:
        raise UserError(f"CSV file {str(path)!r} cannot be parsed ({error}); check that it is a valid CSV file.") from None
    chosen = column or _detect_text_column(path, columns, rows)
    if chosen not in columns:
        raise UserError(f"CSV file {str(path)!r} has no column {chosen!r}; its columns are: {_listed(columns)}.")
    return [row[chosen] or "" for row in rows if (row[chosen] or "") != UNKNOWN_PLACEHOLDER]


def _detect_text_column(path: Path, columns: Sequence[str], rows: list[dict[str, str | None]]) -> str:
    if "headline" in columns:
        return "headline"
    text_like = [c for c in columns if _looks_like_prose(row.get(c) or "" for row in rows[:_SNIFF_ROWS])]
    if len(text_like) == 1:
        return text_like[0]
    raise UserError(
        f"CSV file {str(path)!r} has no 'headline' column and no single text column; "
        f"choose one with --column (columns: {_listed(columns)})."
    )


def _listed(columns: Sequence[str]) -> str:
    """Column names for a one-line message: as they are when printable, quoted otherwise."""
    return ", ".join(column if column.isprintable() else repr(column) for column in columns) or "none"


def _looks_like_prose(values: Iterable[str]) -> bool:
    """Most non-empty values hold several words with letters: a text column, not ids or numbers."""
    filled = [v for v in values if v.strip()]
    wordy = sum(1 for v in filled if len(v.split()) >= 2 and any(ch.isalpha() for ch in v))
    return bool(filled) and wordy >= 0.5 * len(filled)
