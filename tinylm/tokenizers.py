"""Tokenizers: text <-> token ids, the first step of the data flow.

Owns two tokenizers and their files:
- `CharTokenizer`: one id per character, vocab = the sorted distinct characters of a text
  (the classic char-level Shakespeare run).
- `BPETokenizer`: byte-level byte-pair encoding as GPT-2. Text is split into chunks by a regex
  (the "gpt2" or "gpt4" preset, or any pattern; a chunk is a whole match, groups or not), each
  chunk's UTF-8 bytes start as 256 byte tokens and are merged pair by pair in the order the
  merges were learned (their rank). It trains (`train`), encodes with special tokens and lone
  surrogates (as U+FFFD) handled as tiktoken does, decodes (bad UTF-8 becomes U+FFFD),
  saves/loads a readable text file, reads OpenAI's GPT-2 files (`encoder.json` + `vocab.bpe`,
  or Hugging Face's `vocab.json` + `merges.txt`), and turns into a JSON-able dict for
  checkpoints (`to_dict`/`from_dict`).

Training counts pairs once over the *unique* chunks weighted by their frequency, then after each
merge updates only the chunks that contain the merged pair; a heap with lazy invalidation
finds the next pair. Tie rule: the highest count wins; among equal counts, the smallest pair
`(left id, right id)` wins. (This reproduces Wikipedia's "aaabdaaabac" example.)

Encoding keeps a bounded LRU chunk cache (`BPETokenizer.cache_max` entries, chunks up to
`cache_max_chars`), so a repeated word costs one dict lookup. A chunk whose bytes are a whole
token becomes that token at once (as tiktoken does); for vocabularies learned by BPE (ours,
GPT-2's) this is what the merges give anyway, and the tests check it. Merging is the classic
loop for short chunks and O(n log n) for long ones (`_bpe_long`: a linked list and buckets of
ranked pairs), so one long word, a run of spaces or a minified file costs about what tiktoken
does. Non-ASCII chunks are first cut where no merge can join two bytes, and the pieces merged
alone (same ids; text of rare characters makes few distinct pieces).

Files and checkpoint dicts may come from strangers: their loaders check every field (ids in
0..MAX_TOKEN_ID, at most MAX_UNUSED_IDS unused, JSON depth and size through tinylm.validate,
files up to MAX_FILE_BYTES) and raise ValueError naming the file and field. A file's split
pattern names a preset; a custom one is code and loads only with `trust_pattern=True`, bounded
in size (MAX_PATTERN_SIZE) and run under `regex`'s timeout (`BPETokenizer.pattern_timeout`).

Leaves out: Unicode normalisation, SentencePiece/unigram models, byte fallback, multi-threaded
batch encoding, and anything about datasets (tinylm/data.py).
Reference: Karpathy's minbpe (`basic.py`, `regex.py`: train/encode/decode, the
"aaabdaaabac" example), OpenAI's GPT-2 `encoder.py` (bytes_to_unicode, the bpe() loop, the
files) and tiktoken (regex presets, special-token semantics; the tests' oracle).
"""
import heapq
import json
import re
import warnings
from collections import Counter, defaultdict
from itertools import chain, compress, count, islice, repeat
from operator import is_not
from pathlib import Path

import numpy as np
import regex

from .validate import parse_json, read_json

__all__ = ["CharTokenizer", "BPETokenizer", "PATTERNS", "bytes_to_unicode", "tokenizer_from_dict",
           "MAX_TOKEN_ID", "MAX_UNUSED_IDS", "MAX_FILE_BYTES", "MAX_PATTERN_SIZE", "MAX_PATTERN_DEPTH"]

# Pre-tokenization presets, as tiktoken writes them. "gpt2" is r50k's form of GPT-2's
# r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+" (the same
# splits, faster: possessive quantifiers); "gpt4" is cl100k_base's.
PATTERNS = {
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
}
# Their twins for ASCII-only text, run by Python's faster `re`: there \p{L} is [A-Za-z], \p{N}
# is [0-9], \s the same six chars, and a possessive quantifier ending an alternative matches as a
# greedy one. The tests check that each twin splits ASCII text as its preset does.
_ASCII_TWINS = {
    PATTERNS["gpt2"]: r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+$|\s+(?!\S)|\s""",
    PATTERNS["gpt4"]: r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s+$|\s*[\r\n]|\s+(?!\S)|\s""",
}
GPT2_EOT = "<|endoftext|>"
_FORMAT = "tinylm-bpe 1"      # first line of a saved BPE file
_NO_RANK = 1 << 62            # "this pair has no merge"; larger than any rank
_SHORT_CHUNK = 32             # chunks of more ids than this merge with BPETokenizer._bpe_long
_TEXT_CUT_MIN = 10_000        # new chunks above which (and 10% of all) a text is cut whole

# Limits for tokenizer files tinylm did not write (docs/06-bpe.md, "Loading files you did not
# write"); a file beyond them gets a ValueError naming the file and the field.
MAX_TOKEN_ID = 2**31 - 1      # every id (bytes, merges, special tokens) lies in 0..MAX_TOKEN_ID
MAX_UNUSED_IDS = 1024         # a file's vocab_size may exceed its number of tokens by at most this
MAX_FILE_BYTES = 256 * 2**20  # tokenizer files are read up to this size (GPT-2's are 1.5 MB)
MAX_PATTERN_SIZE = 10_000     # a trusted file's pattern, its counted repeats {m,n} unrolled
MAX_PATTERN_DEPTH = 50        # ... and its nested groups
# names a file may give its pattern: the presets and tiktoken's names for them
_PATTERN_NAMES = {**{name: name for name in PATTERNS}, "r50k_base": "gpt2", "cl100k_base": "gpt4"}
_REPEAT = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")


def _file_pattern(value, where, trust_pattern):
    """The split pattern a file names -> (regex str, True if it is a custom one).

    A file names a preset ("gpt2", "gpt4", "r50k_base", "cl100k_base"; a preset's full text, as
    older files wrote it, counts as its name). Any other pattern is code from the file: it loads
    only with trust_pattern=True, and only within MAX_PATTERN_SIZE / MAX_PATTERN_DEPTH.
    """
    if not isinstance(value, str):
        raise ValueError(f"{where}: the pattern must be a string, got {type(value).__name__}")
    if value in _PATTERN_NAMES:
        return PATTERNS[_PATTERN_NAMES[value]], False
    if value in PATTERNS.values():
        return value, False
    if not trust_pattern:
        raise ValueError(
            f"{where}: the split pattern {value[:60]!r} is not one of the known patterns "
            f"{sorted(_PATTERN_NAMES)}; a pattern from a file is code that runs on your text, so it "
            f"loads only when you pass trust_pattern=True (do so only if you trust this file)")
    _check_pattern_size(value, where)
    return value, True


def _check_pattern_size(pattern, where):
    """ValueError unless `pattern`, with its counted repeats unrolled, stays within
    MAX_PATTERN_SIZE items and MAX_PATTERN_DEPTH nested groups.

    `regex` unrolls a counted repeat when it compiles (`a{1000000000}` asks for tens of GB), so
    the size is bounded before compiling: an upper bound found in one pass, each group's size
    times the largest count applied to it. Escapes and character classes count as one item.
    """
    stack = [[0, 0]]                     # per open group: [its size so far, size of its last item]
    i, n = 0, len(pattern)
    while i < n:
        c, top = pattern[i], stack[-1]
        item = 1
        if c == "\\":
            j = i + 2
            if pattern[i + 1:i + 2] in ("p", "P", "N", "x", "u", "U", "g", "k") and pattern[j:j + 1] == "{":
                j = pattern.find("}", j) + 1 or n
            i = j
        elif c == "[":
            j = i + 1
            j += pattern[j:j + 1] == "^"
            j += pattern[j:j + 1] == "]"
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
        elif c == "(":
            stack.append([0, 0])
            if len(stack) > MAX_PATTERN_DEPTH:
                raise ValueError(f"{where}: the pattern nests groups deeper than {MAX_PATTERN_DEPTH}")
            i += 1
            continue
        elif c == ")" and len(stack) > 1:
            item = max(stack.pop()[0], 1)
            top = stack[-1]
            i += 1
        elif c == "{" and (m := _REPEAT.match(pattern, i)) and any(m.groups()):
            digits = [d for d in m.groups() if d]
            count = max(int(d) if len(d) < 10 else MAX_PATTERN_SIZE + 1 for d in digits)
            top[0] += top[1] * (count - 1)        # the last item, `count` times in all
            top[1] *= count
            i = m.end()
            item = 0
        elif c in "?*+":                          # a quantifier: the last item stays the last
            i += 1
            continue
        elif c == "|":
            top[1] = 0
            i += 1
            continue
        else:
            i += 1
            if c.isspace():                       # in verbose mode (?x) a quantifier skips it
                top[0] += 1
                top[1] = max(top[1], 1)
                continue
        if item:
            top[0] += item
            top[1] = item
        if top[0] > MAX_PATTERN_SIZE:
            raise ValueError(f"{where}: the pattern is too large: with its counted repeats unrolled "
                             f"it has over {MAX_PATTERN_SIZE:,} items")


def _check_unused_ids(tok, where):
    """ValueError if a file's largest id leaves more than MAX_UNUSED_IDS ids unused below it
    (a model would size its embedding by vocab_size)."""
    if tok.vocab_size > len(tok._vocab) + MAX_UNUSED_IDS:
        raise ValueError(f"{where}: ids run up to {tok.vocab_size - 1} for {len(tok._vocab)} tokens; "
                         f"a tokenizer file may leave at most {MAX_UNUSED_IDS} ids unused")
    return tok


def _read_text(path):
    """A tokenizer text file's content, read up to MAX_FILE_BYTES; ValueError naming the file."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than the {MAX_FILE_BYTES:,}-byte limit for a tokenizer file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


class _FileError(ValueError):
    """A malformed file, already named with its line: `path:line: message`."""


def _check_text(text, what="text"):
    if not isinstance(text, str):
        hint = " (decode bytes to str first)" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"{what} must be a str, got {type(text).__name__}{hint}")


def _check_ids(ids):
    """ids as a list of Python ints (accepts lists, tuples, ranges, iterables, 1-D integer arrays)."""
    if isinstance(ids, (str, bytes, bytearray)) or not hasattr(ids, "__iter__"):
        raise TypeError(f"ids must be a sequence of ints (a list, tuple or 1-D integer array), "
                        f"got {type(ids).__name__}")
    dtype = getattr(ids, "dtype", None)
    if dtype is not None:
        if getattr(dtype, "kind", None) not in ("i", "u"):
            raise TypeError(f"ids must be integers, got an array of dtype {dtype}")
        if getattr(ids, "ndim", 1) != 1:
            raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
        return ids.tolist()
    if not isinstance(ids, (list, tuple)):
        ids = list(ids)                                        # a generator is read once
    if not all(type(t) is int for t in ids):                   # 65.0 and True would pass for 65 and 1
        ids = list(ids)
        for i, t in enumerate(ids):
            if isinstance(t, bool) or not hasattr(type(t), "__index__"):  # ints and NumPy ints
                raise TypeError(f"token ids must be ints, got {type(t).__name__} {t!r:.40} at position {i}")
        ids = [t.__index__() for t in ids]
    return ids


def _cut_bytes(arr, cut):
    """UTF-8 bytes (uint8 array) -> list of bytes, a new one wherever `cut` (bool, cut[0] True)
    is True. Byte 0xFF never occurs in UTF-8: it is inserted at the cuts and split on, in C."""
    return np.insert(arr, np.flatnonzero(cut[1:]) + 1, 0xFF).tobytes().split(b"\xff")


def _is_id(i):
    """True for an int (not a bool) in 0..MAX_TOKEN_ID."""
    return type(i) is int and 0 <= i <= MAX_TOKEN_ID


def _bad_id(ids, table, vocab_size):
    """The ValueError for the first id of `ids` not in `table`."""
    for i, t in enumerate(ids):
        if t not in table or isinstance(t, (bool, float)):
            return ValueError(f"token id {t!r} at position {i} is not in the vocabulary "
                              f"(ids 0..{vocab_size - 1})")
    return ValueError("ids contain a token id that is not in the vocabulary")


def _utf8_text(text):
    """text with each lone surrogate (a str can hold one, UTF-8 cannot) as U+FFFD, as tiktoken does."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def bytes_to_unicode():
    """GPT-2's reversible map byte (int 0..255) -> printable char (str), used in its files."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _read_json(path):
    """A JSON file's content, read with tinylm.validate's size and depth limits; malformed JSON
    raises ValueError naming the file (and json's line and column)."""
    return read_json(path, max_bytes=MAX_FILE_BYTES)


# ---------------------------------------------------------------------------------------------
# Char-level

class CharTokenizer:
    """One id per character; vocab = sorted distinct characters."""

    def __init__(self, chars):
        """chars: a str or an iterable of 1-char strs (duplicates are dropped, order sorted)."""
        if isinstance(chars, (bytes, bytearray)) or not hasattr(chars, "__iter__"):
            raise TypeError(f"chars must be a str or an iterable of 1-char strs, "
                            f"got {type(chars).__name__}")
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str):
                raise TypeError(f"chars must be 1-char strs, got {type(c).__name__} {c!r}")
            if len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        self.chars = sorted(set(chars))
        self._rebuild()

    def _rebuild(self):
        """Derived state: the char -> id and id -> char tables."""
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))

    @classmethod
    def from_text(cls, text):
        """The tokenizer whose vocab is the sorted distinct chars of `text` (str)."""
        _check_text(text)
        return cls(set(text))

    @property
    def vocab_size(self):
        """Number of ids (int)."""
        return len(self.chars)

    def encode(self, text):
        """str of length T -> list of T ids; an unknown char raises ValueError naming it."""
        _check_text(text)
        stoi = self.stoi
        try:
            return list(map(stoi.__getitem__, text))
        except KeyError:
            for i, c in enumerate(text):
                if c not in stoi:
                    raise ValueError(f"character {c!r} (U+{ord(c):04X}) at position {i} "
                                     f"is not in the vocabulary of {len(stoi)} chars") from None
            raise  # pragma: no cover

    def decode(self, ids):
        """Sequence of ids (ints or a 1-D int array) -> str; an unknown id raises ValueError."""
        ids = _check_ids(ids)
        try:
            return "".join(map(self.itos.__getitem__, ids))
        except (KeyError, TypeError):
            raise _bad_id(ids, self.itos, self.vocab_size) from None

    def to_dict(self):
        """JSON-able dict {"type": "char", "chars": str} (for checkpoints)."""
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d, *, source="tokenizer dict"):
        """The tokenizer saved by `to_dict`; a malformed dict raises ValueError naming `source`."""
        if not isinstance(d, dict) or d.get("type") != "char":
            raise ValueError(f"{source}: not a CharTokenizer dict (no \"type\": \"char\"): {str(d)[:80]!r}")
        if not isinstance(d.get("chars"), str):
            raise ValueError(f"{source}: field 'chars' must be a string, got {type(d.get('chars')).__name__}")
        return cls(d["chars"])

    def save(self, path):
        """Write the vocab as JSON to `path`."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; malformed files raise ValueError naming the file (JSON
        read with tinylm.validate's size and depth limits)."""
        return cls.from_dict(_read_json(path), source=path)

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# ---------------------------------------------------------------------------------------------
# Byte-level BPE

class BPETokenizer:
    """Byte-level BPE (GPT-2 style): regex chunks, UTF-8 bytes merged by rank, special tokens.

    State (everything else is derived by `_rebuild`):
      pattern         the split regex (str)
      merges          dict (left id, right id) -> new id, in rank order (first = merged first)
      byte_ids        list of 256 ids: byte_ids[b] is the token of byte b (identity unless loaded
                      from GPT-2's files)
      special_tokens  dict str -> id, tokens that never come out of merges
    """

    cache_max = 1 << 16          # the LRU chunk cache holds at most this many entries (chunks, and
    cache_max_chars = 64         # pieces as bytes) of at most this many chars (or bytes): a few MB
                                 # for prose (tinyshakespeare's 15,057 chunks: 2.5 MiB), ~160 MB
                                 # at worst (64 four-byte chars, none merged)

    def __init__(self, merges=None, *, pattern="gpt2", special_tokens=None, byte_ids=None):
        """merges: dict (int, int) -> int in rank order (or None); special_tokens: dict str -> int."""
        self.pattern = pattern
        self.merges = dict(merges or {})
        self.special_tokens = dict(special_tokens or {})
        self.byte_ids = list(range(256)) if byte_ids is None else list(byte_ids)
        self._pattern_source = None   # the file a trusted custom pattern came from: split with a timeout
        self._rebuild()

    # -- derived state -----------------------------------------------------------------------

    def _rebuild(self):
        """Check the state and derive everything else: compiled pattern, vocab, rank tables, caches."""
        pat = PATTERNS.get(self.pattern, self.pattern)
        if not isinstance(pat, str):
            raise TypeError(f"pattern must be a str (a preset {sorted(PATTERNS)} or a regex), "
                            f"got {type(pat).__name__}")
        try:
            self._compiled = regex.compile(pat)
        except (regex.error, RecursionError, OverflowError) as e:
            raise ValueError(f"bad pattern {pat[:80]!r}: {e}") from None
        self.pattern = pat
        twin = _ASCII_TWINS.get(pat)
        self._ascii_re = re.compile(twin, re.ASCII) if twin else None

        if len(self.byte_ids) != 256 or len(set(self.byte_ids)) != 256 \
                or not all(type(i) is int and 0 <= i <= MAX_TOKEN_ID for i in self.byte_ids):
            raise ValueError(f"byte_ids must be 256 distinct ints in 0..{MAX_TOKEN_ID}, got "
                             f"{len(self.byte_ids)} values ({len(set(self.byte_ids))} distinct)")
        vocab = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        ranks, merge_list = {}, []
        for rank, (pair, new) in enumerate(self.merges.items()):
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(type(i) is int for i in pair)
                    and type(new) is int):
                raise TypeError(f"merge #{rank} must be (int, int) -> int, got {pair!r} -> {new!r}")
            a, b = pair
            if a not in vocab or b not in vocab:
                raise ValueError(f"merge #{rank} {pair} -> {new} uses id "
                                 f"{a if a not in vocab else b} that no earlier token defines")
            if not 0 <= new <= MAX_TOKEN_ID:
                raise ValueError(f"merge #{rank} {pair} -> {new}: ids lie in 0..{MAX_TOKEN_ID}")
            if new in vocab:
                raise ValueError(f"merge #{rank} {pair} -> {new}: id {new} is already taken")
            vocab[new] = vocab[a] + vocab[b]
            ranks[pair] = rank
            merge_list.append((a, b, new))
        for s, i in self.special_tokens.items():
            if not isinstance(s, str) or not s or type(i) is not int:
                raise TypeError(f"special tokens must be non-empty str -> int, got {s!r} -> {i!r}")
            if not 0 <= i <= MAX_TOKEN_ID:
                raise ValueError(f"special token {s!r}: id {i} is outside 0..{MAX_TOKEN_ID}")
            if i in vocab:
                raise ValueError(f"special token {s!r}: id {i} is already taken")
            vocab[i] = s.encode("utf-8")
        self._vocab = vocab                                   # id -> bytes (specials included)
        self._vocab_size = max(vocab) + 1
        self._ranks = ranks                                   # (a, b) -> rank
        self._merge_list = merge_list                         # rank -> (a, b, new id)
        self._token_of = {}                                   # bytes -> id, for whole-chunk tokens
        for i in chain(self.byte_ids, (new for _, _, new in merge_list)):
            self._token_of.setdefault(vocab[i], i)
        # byte pairs that some merge joins: no merge ever spans a place in a chunk between two
        # bytes not in this set, so a chunk can be cut there and its pieces encoded alone
        self._joinable = np.zeros(1 << 16, bool)             # [x << 8 | y]
        for a, b, _ in merge_list:
            self._joinable[vocab[a][-1] << 8 | vocab[b][0]] = True
        self._byte_table = bytes(self.byte_ids) if max(self.byte_ids) < 256 else None
        self._special_res = {}                                # frozenset of names -> compiled regex
        self._cache = {}                                      # LRU: chunk str / piece bytes -> ids

    # -- properties --------------------------------------------------------------------------

    @property
    def vocab_size(self):
        """1 + the largest id (int): the size an embedding table needs."""
        return self._vocab_size

    @property
    def vocab(self):
        """dict id -> bytes for every token (special tokens as their UTF-8)."""
        return dict(self._vocab)

    @property
    def eot_token(self):
        """Id of "<|endoftext|>" (int), or None when there is no such special token."""
        return self.special_tokens.get(GPT2_EOT)

    @property
    def special_tokens_set(self):
        """The special token names (set of str)."""
        return set(self.special_tokens)

    def __repr__(self):
        name = next((k for k, v in PATTERNS.items() if v == self.pattern), "custom")
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={len(self.special_tokens)}, pattern={name!r})")

    # -- training ----------------------------------------------------------------------------

    def train(self, text, vocab_size, pattern=None, special_tokens=(), verbose=False, progress=None):
        """Learn merges from `text` (str) until the vocab has `vocab_size` ids (specials included).

        special_tokens: names (list of str), given the ids after the merges; their text in `text`
        is cut out before counting. progress: True/False, or None = a tqdm bar when there are
        1000+ merges and stderr is a terminal. Returns self.
        """
        _check_text(text)
        text = _utf8_text(text)
        if type(vocab_size) is not int:
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        if isinstance(special_tokens, (str, dict)):
            raise TypeError("special_tokens must be a list of names (ids are assigned after the merges)")
        special_tokens = list(dict.fromkeys(special_tokens or ()))   # None: none, as in __init__
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges < 0:
            raise ValueError(f"vocab_size {vocab_size} is smaller than 256 bytes + "
                             f"{len(special_tokens)} special tokens")
        # validate the new state before training, so a bad pattern fails fast and leaves self as is
        probe = BPETokenizer(pattern=self.pattern if pattern is None else pattern,
                             special_tokens={s: 256 + i for i, s in enumerate(special_tokens)})
        probe._pattern_source = self._pattern_source if pattern is None else None
        parts = [text]
        if special_tokens:
            parts = probe._special_re(frozenset(special_tokens), group=False).split(text)
        counts = Counter()
        for part in parts:
            counts.update(probe._split(part))
        merges = _learn_merges(counts, num_merges, progress, verbose)

        if len(merges) < num_merges:
            warnings.warn(f"the text has no more pairs to merge after {len(merges)} merges; "
                          f"vocab_size is {256 + len(merges) + len(special_tokens)}, not {vocab_size}",
                          stacklevel=2)
        first_special = 256 + len(merges)
        self.pattern = probe.pattern
        self._pattern_source = probe._pattern_source
        self.byte_ids = list(range(256))
        self.merges = merges
        self.special_tokens = {s: first_special + i for i, s in enumerate(special_tokens)}
        self._rebuild()
        return self

    # -- encoding ----------------------------------------------------------------------------

    def _bpe(self, ids):
        """Merge a chunk's byte-token ids (list of int) by rank; returns the merged list.

        Short chunks (up to `_SHORT_CHUNK` ids, nearly all of them) take the classic GPT-2 loop,
        fastest there; longer ones take `_bpe_long`, O(n log n). Both merge the leftmost
        lowest-rank pair first, as tiktoken does.
        """
        if len(ids) > _SHORT_CHUNK:
            return self._bpe_long(ids)
        get, merge_list = self._ranks.get, self._merge_list
        ranks = list(map(get, zip(ids, ids[1:]), repeat(_NO_RANK)))
        while ranks:
            rank = min(ranks)
            if rank == _NO_RANK:
                break
            i = ranks.index(rank)
            new = merge_list[rank][2]
            ids[i:i + 2] = (new,)
            del ranks[i]
            if i:
                ranks[i - 1] = get((ids[i - 1], new), _NO_RANK)
            if i < len(ranks):
                ranks[i] = get((new, ids[i + 1]), _NO_RANK)
        return ids

    def _bpe_long(self, ids):
        """`_bpe` for a long chunk in O(n log n): a linked list of tokens and ranked pair buckets.

        Token k lives at node k (its first byte's index): ids[k] is its id (-1 once merged into
        its left neighbour), nxt[k] and prv[k] its neighbours. buckets[r] lists the nodes whose
        pair with their right neighbour had rank r when it was added; `order` is a heap of the
        ranks that have a bucket. A merge's inputs are made by earlier merges (`_rebuild` checks
        it), so a pair holding a token made at rank r has a rank above r: ranks come out of the
        heap in increasing order and a bucket is complete when it is taken. Its nodes are merged
        left to right (tiktoken's leftmost-first rule, e.g. "aaa" -> "aa" "a"); an entry whose
        pair has changed since it was added is skipped (lazy invalidation). Each merge adds at
        most two entries, so the work is O(n) entries plus sorting them: O(n log n).
        """
        get, merge_list = self._ranks.get, self._merge_list
        if (ids[0], ids[0]) not in self._ranks and ids.count(ids[0]) == len(ids):
            return ids                    # one byte repeated (a run of spaces) that never merges
        ranks = list(map(get, zip(ids, ids[1:])))
        ranked = list(compress(count(), map(is_not, ranks, repeat(None))))   # C loops: fast when few
        if not ranked:
            return ids
        buckets = defaultdict(list)
        for i in ranked:
            buckets[ranks[i]].append(i)
        del ranks, ranked
        n = len(ids)
        ids.append(-2)                    # a sentinel at n, and at -1 (before the first): no pairs
        nxt = list(range(1, n + 2))
        prv = list(range(-1, n))
        order = list(buckets)
        heapq.heapify(order)
        heappush, heappop = heapq.heappush, heapq.heappop
        while order:
            rank = heappop(order)
            a, b, new = merge_list[rank]
            bucket = buckets.pop(rank)
            bucket.sort()
            for i in bucket:
                if ids[i] != a:               # merged away, or its token changed
                    continue
                j = nxt[i]
                if ids[j] != b:               # its right neighbour changed
                    continue
                ids[i] = new
                ids[j] = -1
                k = nxt[j]
                nxt[i] = k
                prv[k] = i
                r = get((new, ids[k]))
                if r is not None:             # the new pair on the right
                    if r not in buckets:
                        heappush(order, r)
                    buckets[r].append(i)
                h = prv[i]
                r = get((ids[h], new))
                if r is not None:             # ... and on the left
                    if r not in buckets:
                        heappush(order, r)
                    buckets[r].append(h)
        ids.pop()
        return list(filter((-1).__ne__, ids))

    def _byte_ids_of(self, data):
        """bytes -> list of byte-token ids."""
        if self._byte_table is not None:
            return list(data.translate(self._byte_table))
        byte_ids = self.byte_ids
        return [byte_ids[b] for b in data]

    def _encode_chunk(self, chunk):
        """One chunk (str) -> its ids (list of int)."""
        data = chunk.encode("utf-8")
        token = self._token_of.get(data)
        if token is not None:
            return [token]
        return self._bpe(self._byte_ids_of(data))

    def _encode_cut(self, chunks):
        """Distinct non-ASCII chunks (list of str) -> their ids (list of lists), merged in pieces.

        No merge joins two bytes whose pair is not in `_joinable` (no token holds them side by
        side), so a chunk can be cut there and its pieces merged alone, with the same result.
        Text of rare characters (random bytes, mixed scripts) makes many distinct chunks but
        few distinct pieces, each merged once. The cuts of all the chunks are found at once
        with NumPy. Raises UnicodeEncodeError on lone surrogates.
        """
        datas = list(map(str.encode, chunks))
        blob = b"".join(datas)
        n = len(blob)
        arr = np.frombuffer(blob, np.uint8)
        cut = np.empty(n, bool)                           # cut[i]: a piece starts at byte i
        cut[:1] = True
        np.logical_not(self._joinable[(arr[:-1].astype(np.intp) << 8) | arr[1:]], out=cut[1:])
        lens = np.fromiter(map(len, datas), np.intp, len(datas))
        ends = np.cumsum(lens)
        starts = ends - lens
        cut[starts[starts < n]] = True                    # where each chunk starts
        bounds = np.flatnonzero(cut)
        first = np.searchsorted(bounds, starts).tolist()  # each chunk's first piece
        last = np.searchsorted(bounds, ends).tolist()     # ... and one past its last
        pieces = _cut_bytes(arr, cut)
        memo = dict.fromkeys(pieces)
        bpe, byte_ids_of = self._bpe, self._byte_ids_of
        for piece in memo:
            memo[piece] = bpe(byte_ids_of(piece))
        ids = list(map(memo.__getitem__, pieces))
        return list(map(list, map(chain.from_iterable, map(ids.__getitem__, map(slice, first, last)))))

    def _encode_text_cut(self, text, chunks):
        """`text`'s ids from its pieces (see `_encode_cut`) without caching its chunks, or None
        where its chunks do not cover it (a custom pattern may skip text). For large texts whose
        chunks are mostly new: it saves building and caching each chunk's list of ids."""
        lens = np.fromiter(map(len, chunks), np.intp, len(chunks))
        if int(lens.sum()) != len(text):
            return None
        blob = text.encode("utf-8")
        n = len(blob)
        arr = np.frombuffer(blob, np.uint8)
        cut = np.empty(n, bool)                           # cut[i]: a piece starts at byte i
        cut[:1] = True
        np.logical_not(self._joinable[(arr[:-1].astype(np.intp) << 8) | arr[1:]], out=cut[1:])
        chars = np.frombuffer(text.encode("utf-32-le"), np.uint32)
        byte_of = np.zeros(len(chars) + 1, np.intp)       # char index -> byte offset
        np.cumsum(1 + (chars >= 0x80) + (chars >= 0x800) + (chars >= 0x10000), out=byte_of[1:])
        starts = byte_of[np.cumsum(lens) - lens]
        cut[starts[starts < n]] = True                    # where each chunk starts
        pieces = _cut_bytes(arr, cut)
        cache = self._cache
        distinct = set(pieces)
        missing = distinct.difference(cache)
        for piece in distinct.difference(missing):
            cache[piece] = cache.pop(piece)               # most recently used: to the end
        bpe, byte_ids_of = self._bpe, self._byte_ids_of
        for piece in missing:
            cache[piece] = bpe(byte_ids_of(piece))
        ids = list(chain.from_iterable(map(cache.__getitem__, pieces)))
        self._trim_cache(missing)
        return ids

    def _split(self, text):
        """text (str) -> list of chunks (str) by the pattern (its ASCII twin on ASCII text)."""
        if self._ascii_re is not None and text.isascii():
            return self._ascii_re.findall(text)
        if self._pattern_source is not None:
            return self._split_guarded(text)
        if self._compiled.groups:       # findall would give the groups; a chunk is the whole match
            return [m[0] for m in self._compiled.finditer(text)]
        return self._compiled.findall(text)

    pattern_timeout = 2.0              # seconds, + pattern_timeout_per_char per char of the text:
    pattern_timeout_per_char = 5e-6    # the time a trusted file's pattern may take to split a text

    def _split_guarded(self, text):
        """`_split` for a custom pattern from a file: run with `regex`'s timeout."""
        limit = self.pattern_timeout + self.pattern_timeout_per_char * len(text)
        try:
            if self._compiled.groups:
                return [m[0] for m in self._compiled.finditer(text, timeout=limit)]
            return self._compiled.findall(text, timeout=limit)
        except TimeoutError:
            raise ValueError(
                f"the split pattern loaded from {self._pattern_source} (with trust_pattern=True) took "
                f"over {limit:.1f} s on a text of {len(text):,} chars: catastrophic backtracking? "
                f"(limit: BPETokenizer.pattern_timeout + pattern_timeout_per_char * len(text))") from None

    def encode_ordinary(self, text):
        """str -> list of ids, special tokens' text encoded as ordinary text (a lone surrogate as
        U+FFFD, as tiktoken)."""
        _check_text(text)
        chunks = self._split(text)
        cache = self._cache
        distinct = set(chunks)
        missing = distinct.difference(cache)
        for chunk in distinct.difference(missing) if missing else distinct:
            cache[chunk] = cache.pop(chunk)              # most recently used: to the end
        if missing:
            if text.isascii():
                encode_chunk = self._encode_chunk
                for chunk in missing:
                    cache[chunk] = encode_chunk(chunk)
            else:
                try:
                    if len(missing) > _TEXT_CUT_MIN and 10 * len(missing) > len(chunks):
                        # mostly new chunks (text of rare characters): pieces of the whole text
                        ids = self._encode_text_cut(text, chunks)
                        if ids is not None:
                            return ids
                    missing = list(missing)
                    cache.update(zip(missing, self._encode_cut(missing)))
                except UnicodeEncodeError:  # lone surrogates: no UTF-8 bytes
                    return self.encode_ordinary(_utf8_text(text))
        ids = list(chain.from_iterable(map(cache.__getitem__, chunks)))
        if missing:
            self._trim_cache(missing)
        return ids

    def _trim_cache(self, added):
        """Drop the just-`added` chunks that are too long to keep, then the least recently used
        entries beyond `cache_max`."""
        cache, limit = self._cache, self.cache_max_chars
        for chunk in added:
            if len(chunk) > limit:
                del cache[chunk]
        excess = len(cache) - self.cache_max
        if excess > 0:
            for key in list(islice(cache, excess)):
                del cache[key]

    def _special_re(self, names, group=True):
        """Compiled regex matching any of the special token names (longest first)."""
        key = (names, group)
        r = self._special_res.get(key)
        if r is None:
            alt = "|".join(regex.escape(s) for s in sorted(names, key=lambda s: (-len(s), s)))
            r = self._special_res[key] = regex.compile(f"({alt})" if group else alt)
        return r

    def _names(self, value, what):
        if value == "all":
            return frozenset(self.special_tokens)
        if isinstance(value, str):
            raise TypeError(f'{what} must be "all" or a set of special token names, got {value!r}')
        names = frozenset(value)
        if what == "allowed_special":
            unknown = names - set(self.special_tokens)
            if unknown:
                raise ValueError(f"allowed_special names {sorted(unknown)} that are not special tokens "
                                 f"of this tokenizer ({sorted(self.special_tokens)})")
        return names

    def encode(self, text, *, allowed_special=frozenset(), disallowed_special="all"):
        """str -> list of ids; special tokens as tiktoken: allowed ones become their id, and
        text matching a disallowed one (by default all that are not allowed) raises ValueError."""
        _check_text(text)
        allowed = self._names(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = frozenset(self.special_tokens) - allowed
        else:
            disallowed = self._names(disallowed_special, "disallowed_special")
        found = [(i, s) for s in disallowed for i in (text.find(s),) if i >= 0]   # str.find: fast
        if found:
            i, s = min(found)
            raise ValueError(
                f"text contains the special token {s!r} at position {i}, which is disallowed: "
                f"pass allowed_special={{{s!r}}} (or 'all') to encode it as the special token, "
                f"or disallowed_special=() to encode it as ordinary text")
        if not any(s in text for s in allowed):
            return self.encode_ordinary(text)
        parts = self._special_re(allowed).split(text)   # text, special, text, special, ..., text
        ids = []
        for i, part in enumerate(parts):
            if i % 2:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def encode_batch(self, texts, **kwargs):
        """list of str -> list of lists of ids (same keyword arguments as `encode`)."""
        if isinstance(texts, str):
            raise TypeError("encode_batch takes a list of str; use encode for one str")
        return [self.encode(t, **kwargs) for t in texts]

    # -- decoding ----------------------------------------------------------------------------

    def decode_bytes(self, ids):
        """Sequence of ids (ints or a 1-D int array) -> bytes; an unknown id raises ValueError."""
        ids = _check_ids(ids)
        try:
            return b"".join(map(self._vocab.__getitem__, ids))
        except (KeyError, TypeError):
            raise _bad_id(ids, self._vocab, self.vocab_size) from None

    def decode(self, ids):
        """Sequence of ids -> str; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- dicts and files ---------------------------------------------------------------------
    #
    # Files and dicts may come from strangers. Their loaders check every field before anything
    # is built and raise a ValueError naming the file (or `source`) and the field: ids are ints
    # in 0..MAX_TOKEN_ID with at most MAX_UNUSED_IDS unused below the largest, JSON is read with
    # tinylm.validate's size and depth limits, files up to MAX_FILE_BYTES. The split pattern is
    # named (a preset); a custom one loads only with trust_pattern=True (see `_file_pattern`).

    def _pattern_name(self):
        """The preset name of the pattern ("gpt2", "gpt4"), else the pattern itself."""
        return next((k for k, v in PATTERNS.items() if v == self.pattern), self.pattern)

    def to_dict(self):
        """JSON-able dict: {"type": "bpe", "pattern" (a preset's name, or the regex), "byte_ids"
        (None = identity), "merges" [[a, b, id], ...] in rank order, "special_tokens" {str: id}}."""
        identity = self.byte_ids == list(range(256))
        return {"type": "bpe", "pattern": self._pattern_name(),
                "byte_ids": None if identity else list(self.byte_ids),
                "merges": [[a, b, new] for (a, b), new in self.merges.items()],
                "special_tokens": dict(self.special_tokens)}

    @classmethod
    def from_dict(cls, d, *, trust_pattern=False, source="tokenizer dict"):
        """The tokenizer saved by `to_dict`.

        The dict may come from a file you did not write (a checkpoint): a malformed one raises
        ValueError naming `source` (say, the checkpoint's path) and the field. Its pattern must
        name a preset; a custom pattern loads only with trust_pattern=True, and then splits
        text under a timeout (`pattern_timeout`).
        """
        if not isinstance(d, dict) or d.get("type") != "bpe":
            raise ValueError(f"{source}: not a BPETokenizer dict (no \"type\": \"bpe\"): {str(d)[:80]!r}")
        pattern, custom = _file_pattern(d.get("pattern", "gpt2"), f"{source}: field 'pattern'", trust_pattern)
        rows = d.get("merges")
        if not isinstance(rows, list):
            raise ValueError(f"{source}: field 'merges' must be a list of [left, right, id], "
                             f"got {type(rows).__name__}")
        merges = {}
        for k, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == 3 and all(_is_id(i) for i in row)):
                raise ValueError(f"{source}: field 'merges'[{k}] must be [left, right, id] with ids in "
                                 f"0..{MAX_TOKEN_ID}, got {str(row)[:60]}")
            if (row[0], row[1]) in merges:
                raise ValueError(f"{source}: field 'merges'[{k}] repeats the merge {row[:2]}")
            merges[row[0], row[1]] = row[2]
        specials = d.get("special_tokens") or {}
        if not isinstance(specials, dict) or not all(isinstance(s, str) and _is_id(i) for s, i in specials.items()):
            raise ValueError(f"{source}: field 'special_tokens' must map names to ids in 0..{MAX_TOKEN_ID}, "
                             f"got {str(specials)[:80]}")
        byte_ids = d.get("byte_ids")
        if byte_ids is not None and not (isinstance(byte_ids, list) and len(byte_ids) == 256
                                         and all(_is_id(i) for i in byte_ids)):
            raise ValueError(f"{source}: field 'byte_ids' must be null or 256 ids in 0..{MAX_TOKEN_ID}")
        return cls._checked(merges, pattern, specials, byte_ids, source, custom)

    @classmethod
    def _checked(cls, merges, pattern, specials, byte_ids, source, custom):
        """The tokenizer of a file's checked fields; what `_rebuild` finds wrong names `source`."""
        try:
            tok = cls(merges, pattern=pattern, special_tokens=specials, byte_ids=byte_ids)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None
        if custom:
            tok._pattern_source = str(source)
        return _check_unused_ids(tok, source)

    def save(self, path):
        """Write a readable text file: pattern, byte ids, special tokens, one merge a line.

        Lines: `tinylm-bpe 1`; `pattern <JSON str>` (a preset's name, or the regex);
        `bytes identity` or `bytes <256 ids>`; `special <id> <JSON str>`; `merge <left> <right>
        <id>`, rank order. Lines starting with `#` are comments; each merge line ends with
        `# <the token it makes>`, for reading.
        """
        lines = [_FORMAT, f"pattern {json.dumps(self._pattern_name())}"]
        identity = self.byte_ids == list(range(256))
        lines.append("bytes identity" if identity else "bytes " + " ".join(map(str, self.byte_ids)))
        lines += [f"special {i} {json.dumps(s, ensure_ascii=False)}" for s, i in self.special_tokens.items()]
        vocab = self._vocab
        for (a, b), new in self.merges.items():
            shown = json.dumps(vocab[new].decode("utf-8", errors="replace"), ensure_ascii=False)
            lines.append(f"merge {a} {b} {new}  # {shown}")
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path, *, trust_pattern=False):
        """Read a file written by `save`; malformed lines raise ValueError with file and line.

        The file's pattern must name a preset ("gpt2", "gpt4", ...). A custom pattern is code
        from the file: it loads only with trust_pattern=True (pass it only for files you trust),
        within MAX_PATTERN_SIZE, and splits text under a timeout (`pattern_timeout`), so a
        pathological pattern raises ValueError instead of hanging.
        """
        path = Path(path)
        lines = _read_text(path).split("\n")
        pattern, custom, byte_ids, specials, merges = None, False, None, {}, {}
        known = set(range(256))       # ids defined so far (byte ids are replaced below)

        def fail(lineno, msg):
            raise _FileError(f"{path}:{lineno}: {msg}")

        def ids(text, lineno, what):
            out = text.split()
            for x in out:
                if not (x.isascii() and x.isdigit() and len(x) <= 10 and int(x) <= MAX_TOKEN_ID):
                    fail(lineno, f"{what}: {x[:20]!r} is not an id in 0..{MAX_TOKEN_ID}")
            return [int(x) for x in out]

        if lines[0].strip() != _FORMAT:
            fail(1, f"expected the header {_FORMAT!r}, got {lines[0][:40]!r}")
        for lineno, line in enumerate(lines[1:], start=2):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kind, _, rest = line.partition(" ")
            if kind == "merge":
                triple = ids(rest.split("#", 1)[0], lineno, "merge")
                if len(triple) != 3:
                    fail(lineno, f"malformed 'merge' line {line[:60]!r}: expected 'merge <left> <right> <id>'")
                a, b, new = triple
                if a not in known or b not in known:
                    fail(lineno, f"merge uses id {a if a not in known else b} before it is defined")
                if new in known or new in specials.values():
                    fail(lineno, f"merge makes id {new}, which is already taken")
                if (a, b) in merges:
                    fail(lineno, f"duplicate merge ({a}, {b})")
                merges[(a, b)] = new
                known.add(new)
            elif kind == "pattern":
                if merges or pattern is not None:
                    fail(lineno, "'pattern' must come once, before the merges")
                value = parse_json(rest, f"{path}:{lineno}: 'pattern'")
                pattern, custom = _file_pattern(value, f"{path}:{lineno}", trust_pattern)
                try:
                    regex.compile(pattern)
                except (regex.error, RecursionError, OverflowError) as e:
                    fail(lineno, f"bad pattern: {e}")
            elif kind == "bytes":
                if merges or byte_ids is not None:
                    fail(lineno, "'bytes' must come once, before the merges")
                byte_ids = list(range(256)) if rest.strip() == "identity" else ids(rest, lineno, "bytes")
                if len(byte_ids) != 256 or len(set(byte_ids)) != 256:
                    fail(lineno, f"'bytes' needs 256 distinct ids, got {len(byte_ids)}")
                known = set(byte_ids)
            elif kind == "special":
                sid, _, name = rest.partition(" ")
                sid = ids(sid, lineno, "special")
                name = parse_json(name, f"{path}:{lineno}: special token name")
                if len(sid) != 1 or not isinstance(name, str) or not name:
                    fail(lineno, "expected 'special <id> <name as a non-empty JSON string>'")
                if name in specials or sid[0] in specials.values():
                    fail(lineno, f"duplicate special token {name!r} / id {sid[0]}")
                specials[name] = sid[0]
            else:
                fail(lineno, f"unknown line kind {kind[:20]!r} (expected pattern, bytes, special or merge)")
        if pattern is None:
            fail(len(lines) - (lines[-1] == ""), "no 'pattern' line")
        return cls._checked(merges, pattern, specials, byte_ids, path, custom)

    # -- GPT-2 / Hugging Face files ----------------------------------------------------------

    @classmethod
    def from_gpt2(cls, encoder_json, vocab_bpe):
        """GPT-2's tokenizer from OpenAI's `encoder.json` + `vocab.bpe` (or HF's `vocab.json` +
        `merges.txt`, the same formats); entries of the JSON that are neither bytes nor merges
        (GPT-2: "<|endoftext|>" = 50256) become special tokens. Malformed files raise ValueError
        naming the file (and line): ids must be distinct ints in 0..MAX_TOKEN_ID."""
        encoder = _read_json(encoder_json)
        if not isinstance(encoder, dict):
            raise ValueError(f"{encoder_json}: expected a JSON object token -> id, got {type(encoder).__name__}")
        owner = {}
        for tok, i in encoder.items():
            if not _is_id(i):
                raise ValueError(f"{encoder_json}: token {tok[:40]!r} has id {str(i)[:40]}; ids must be "
                                 f"ints in 0..{MAX_TOKEN_ID}")
            if i in owner:
                raise ValueError(f"{encoder_json}: tokens {owner[i][:40]!r} and {tok[:40]!r} share the id {i}")
            owner[i] = tok
        b2u = bytes_to_unicode()
        try:
            byte_ids = [encoder[b2u[b]] for b in range(256)]
        except KeyError as e:
            raise ValueError(f"{encoder_json}: the byte token {e.args[0]!r} is missing") from None
        lines = _read_text(vocab_bpe).split("\n")
        merges, made = {}, set(byte_ids)
        for lineno, line in enumerate(lines, start=1):
            if lineno == 1 and line.startswith("#version"):
                continue
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{vocab_bpe}:{lineno}: expected two tokens separated by a space, "
                                 f"got {line[:60]!r}")
            left, right = parts
            ids = [encoder.get(left), encoder.get(right), encoder.get(left + right)]
            for tok, i in zip((left, right, left + right), ids):
                if i is None:
                    raise ValueError(f"{vocab_bpe}:{lineno}: token {tok[:60]!r} is not in "
                                     f"{Path(encoder_json).name}")
            if ids[0] not in made or ids[1] not in made:
                raise ValueError(f"{vocab_bpe}:{lineno}: merge {line[:60]!r} uses a token no earlier merge makes")
            if ids[2] in made:
                raise ValueError(f"{vocab_bpe}:{lineno}: merge {line[:60]!r} makes a token that already exists")
            merges[(ids[0], ids[1])] = ids[2]
            made.add(ids[2])
        specials = {tok: i for tok, i in encoder.items() if i not in made}
        return cls._checked(merges, "gpt2", specials, byte_ids, encoder_json, False)

    @classmethod
    def from_pretrained(cls, directory):
        """GPT-2's tokenizer from a folder holding `encoder.json` + `vocab.bpe` (OpenAI's names)
        or `vocab.json` + `merges.txt` (Hugging Face's names)."""
        d = Path(directory)
        for vocab, merges in (("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")):
            if (d / vocab).is_file() and (d / merges).is_file():
                return cls.from_gpt2(d / vocab, d / merges)
        raise FileNotFoundError(f"{d} holds neither encoder.json + vocab.bpe "
                                f"nor vocab.json + merges.txt")


def _learn_merges(counts, num_merges, progress=None, verbose=False):
    """Counter of chunk str -> frequency  ->  merges dict (a, b) -> new id, at most num_merges.

    Each unique chunk is a list of ids with its count. `stats` holds pair -> weighted count and
    `where` pair -> indices of chunks that may contain it (a superset: stale entries are
    harmless). Merging pair (a, b) into id n rewrites only the chunks in where[(a, b)], each
    occurrence x a b y becoming x n y: (x, a) and (b, y) lose the chunk's count, (x, n) and
    (n, y) gain it. Pairs without n can only lose count and pairs with n are new, so the
    heap holds at most one entry per pair, an upper bound of its count; a popped entry
    whose count went down is pushed back with the true count (lazy invalidation). Tie rule:
    heap order (-count, pair), i.e. highest count, then smallest (left, right).
    """
    words = [list(chunk.encode("utf-8")) for chunk in counts]
    freqs = list(counts.values())
    stats = defaultdict(int)
    where = defaultdict(set)
    for i, ids in enumerate(words):
        f = freqs[i]
        for pair in zip(ids, ids[1:]):
            stats[pair] += f
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in stats.items()]
    heapq.heapify(heap)

    from tqdm.auto import tqdm        # here, not at the top: it costs 0.1 s to import

    disable = (num_merges < 1000 or None) if progress is None else not progress
    bar = tqdm(total=num_merges, desc="bpe merges", unit="merge", disable=disable)
    merges, vocab = {}, {i: bytes([i]) for i in range(256)}
    new = 256
    while len(merges) < num_merges and heap:
        negc, pair = heapq.heappop(heap)
        c = stats.get(pair, 0)
        if c != -negc:                  # stale: the count went down since it was pushed
            if c > 0:
                heapq.heappush(heap, (-c, pair))
            continue
        a, b = pair
        merges[pair] = new
        if verbose:
            vocab[new] = vocab[a] + vocab[b]
            print(f"merge {len(merges)}/{num_merges}: {pair} -> {new} ({vocab[new]!r}) had {c} occurrences")
        touched = set()                 # pairs with the new id whose count went up
        for i in where.pop(pair):
            ids, f, j = words[i], freqs[i], 0
            while True:                 # each occurrence, left to right: x a b y -> x new y
                try:
                    j = ids.index(a, j)
                except ValueError:
                    break
                if j + 1 < len(ids) and ids[j + 1] == b:
                    if j:
                        x = ids[j - 1]
                        stats[x, a] -= f
                        stats[x, new] += f
                        touched.add((x, new))
                        where[x, new].add(i)
                    if j + 2 < len(ids):
                        y = ids[j + 2]
                        stats[b, y] -= f
                        stats[new, y] += f
                        touched.add((new, y))
                        where[new, y].add(i)
                    ids[j:j + 2] = (new,)
                j += 1
        del stats[pair]
        for p in touched:
            if stats[p] > 0:
                heapq.heappush(heap, (-stats[p], p))
        new += 1
        bar.update()
    bar.close()
    return merges


def tokenizer_from_dict(d, *, trust_pattern=False, source="tokenizer dict"):
    """CharTokenizer or BPETokenizer from its `to_dict()` (dispatch on d["type"]); `source` (say,
    a checkpoint's path) names the dict in errors; trust_pattern as in `BPETokenizer.from_dict`."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind == "char":
        return CharTokenizer.from_dict(d, source=source)
    if kind == "bpe":
        return BPETokenizer.from_dict(d, trust_pattern=trust_pattern, source=source)
    raise ValueError(f"{source}: unknown tokenizer dict type {str(kind)[:40]!r} (expected 'char' or 'bpe')")
