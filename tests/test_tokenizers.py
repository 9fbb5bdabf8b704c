"""Tests for tinylm/tokenizers.py: CharTokenizer and BPETokenizer.

Oracles: tiktoken built offline from GPT-2's own files (ids must be equal), a naive minbpe-style
trainer and encoder (full recount per merge) for the incremental trainer and the fast encoder,
and the hand-checked "aaabdaaabac" example. GPT-2 tests skip when ../shared/data is absent;
tiktoken tests skip when tiktoken (the `test` extra) is not installed.
"""
import importlib.util
import json
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import given, settings, strategies as st

from tinylm.tokenizers import PATTERNS, BPETokenizer, CharTokenizer, tokenizer_from_dict

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2_DIR = DATA / "gpt2"
SHAKESPEARE = DATA / "tinyshakespeare.txt"
EOT = "<|endoftext|>"
# GPT-2's own regex from OpenAI's encoder.py (our "gpt2" preset is tiktoken's faster equivalent)
GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

needs_gpt2 = pytest.mark.skipif(not (GPT2_DIR / "encoder.json").is_file(),
                                reason="GPT-2 files not found in ../shared/data/gpt2 beside the repository")
needs_shakespeare = pytest.mark.skipif(not SHAKESPEARE.is_file(),
                                       reason="tinyshakespeare.txt not found in ../shared/data beside the repository")

# Text for property tests: letters of every script, digits, punctuation and symbols, whitespace
# runs, contractions, emoji (with ZWJ, skin tones, flags), CJK, combining marks, and any char.
_UTF8 = dict(codec="utf-8")        # valid str only: no surrogates
_pieces = st.one_of(
    st.text(st.characters(categories=("Lu", "Ll", "Lt", "Lm", "Lo"), **_UTF8), min_size=1, max_size=8),
    st.text(st.characters(categories=("Nd", "Nl", "No"), **_UTF8), min_size=1, max_size=6),
    st.text(st.characters(categories=("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"),
                          **_UTF8), min_size=1, max_size=4),
    st.text(st.sampled_from(" \t\n\r\x0b\x0c\x85\xa0\u2028\u3000"), min_size=1, max_size=6),
    st.sampled_from(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'x", "don't", "I'M"]),
    st.text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), min_size=1, max_size=3),
    st.sampled_from(["👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "é", "ñ", "Å"]),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=4),
    st.text(st.characters(categories=("Mn", "Mc", "Me"), **_UTF8), min_size=1, max_size=3),
    st.text(st.characters(**_UTF8), max_size=6),
)
texts = st.lists(_pieces, max_size=12).map("".join)
ascii_texts = st.one_of(
    st.text(st.characters(max_codepoint=127), max_size=40),
    st.lists(st.one_of(st.text(st.sampled_from(string.ascii_letters), min_size=1, max_size=5),
                       st.text(st.sampled_from(string.digits), min_size=1, max_size=5),
                       st.text(st.sampled_from(string.punctuation), min_size=1, max_size=3),
                       st.text(st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1f"), min_size=1, max_size=5),
                       st.sampled_from(["'s", "'T", "'re", "'VE", "'m", "'ll", "'D", "'x"])),
             max_size=12).map("".join))


def _bytes_to_unicode():
    """GPT-2's byte -> char map, written out again so the oracle does not lean on the module."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@pytest.fixture(scope="module")
def gpt2():
    if not (GPT2_DIR / "encoder.json").is_file():
        pytest.skip("GPT-2 files not found in ../shared/data/gpt2 beside the repository")
    return BPETokenizer.from_pretrained(GPT2_DIR)


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    """tiktoken's Encoding for GPT-2 built from the same files, without network."""
    tiktoken = pytest.importorskip("tiktoken")
    if not (GPT2_DIR / "encoder.json").is_file():
        pytest.skip("GPT-2 files not found in ../shared/data/gpt2 beside the repository")
    byte_of = {c: b for b, c in _bytes_to_unicode().items()}
    encoder = json.loads((GPT2_DIR / "encoder.json").read_text(encoding="utf-8"))
    ranks = {bytes(byte_of[c] for c in tok): i for tok, i in encoder.items() if tok != EOT}
    return tiktoken.Encoding("gpt2-local", pat_str=GPT2_REGEX, mergeable_ranks=ranks,
                             special_tokens={EOT: encoder[EOT]})


@pytest.fixture(scope="module")
def shakespeare():
    if not SHAKESPEARE.is_file():
        pytest.skip("tinyshakespeare.txt not found in ../shared/data beside the repository")
    return SHAKESPEARE.read_text(encoding="utf-8")


_SAMPLE = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
           "Ça va? Naïve café, déjà vu — 東京は大きい都市です。 Привет, мир! 123 4567 😀👍🏽\t\t end  \n") * 20


@pytest.fixture(scope="module")
def trained():
    """A small tokenizer trained on multi-script text, with the gpt4 preset and a special token."""
    return BPETokenizer(pattern="gpt4").train(_SAMPLE, 256 + 120 + 1, special_tokens=[EOT])


# --- naive oracles (minbpe basic.py style: recount everything every step) -------------------

def naive_train(text, num_merges, pattern):
    chunks = Counter(regex.findall(PATTERNS.get(pattern, pattern), text))
    words = [(list(c.encode("utf-8")), n) for c, n in chunks.items()]
    merges = {}
    for new in range(256, 256 + num_merges):
        stats = Counter()
        for ids, n in words:
            for p in zip(ids, ids[1:]):
                stats[p] += n
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))   # highest count, then smallest pair
        merges[pair] = new
        words = [(naive_merge(ids, pair, new), n) for ids, n in words]
    return merges


def naive_merge(ids, pair, new):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def naive_encode(tok, text):
    ranks = {pair: r for r, pair in enumerate(tok.merges)}
    ids = []
    for chunk in regex.findall(tok.pattern, text):
        c = [tok.byte_ids[b] for b in chunk.encode("utf-8")]
        while len(c) > 1:
            pair = min(zip(c, c[1:]), key=lambda p: ranks.get(p, float("inf")))
            if pair not in ranks:
                break
            c = naive_merge(c, pair, tok.merges[pair])
        ids += c
    return ids


# --- CharTokenizer --------------------------------------------------------------------------

def test_char_vocab_encode_decode():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.vocab_size == 8
    assert tok.encode("hello") == [3, 2, 4, 4, 5]
    assert tok.decode([3, 2, 4, 4, 5]) == "hello"
    assert tok.decode(np.array([7, 5], dtype=np.int64)) == "wo"
    assert CharTokenizer("olleh").chars == CharTokenizer(["h", "e", "l", "o"]).chars


def test_char_errors(tmp_path):
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        tok.encode("abz")
    with pytest.raises(TypeError):
        tok.encode(b"abc")
    with pytest.raises(ValueError, match="token id 3 at position 1"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="-1"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="'ab'"):
        CharTokenizer(["ab"])
    with pytest.raises(TypeError):
        CharTokenizer(5)
    bad = tmp_path / "char.json"
    bad.write_text('{"type": "char",\n "chars": ', encoding="utf-8")
    with pytest.raises(ValueError, match=r"char\.json: .*line 2"):
        CharTokenizer.load(bad)
    bad.write_text('{"type": "bpe"}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"char\.json: .*type"):
        CharTokenizer.load(bad)


def test_char_dict_and_files(tmp_path):
    tok = CharTokenizer.from_text("to be or not to be\n¿é?")
    d = json.loads(json.dumps(tok.to_dict()))
    assert CharTokenizer.from_dict(d).chars == tok.chars
    assert tokenizer_from_dict(d).chars == tok.chars
    tok.save(tmp_path / "chars.json")
    assert CharTokenizer.load(tmp_path / "chars.json").encode("not be") == tok.encode("not be")


@needs_shakespeare
def test_char_shakespeare(shakespeare):
    tok = CharTokenizer.from_text(shakespeare)
    assert tok.vocab_size == 65
    assert tok.decode(tok.encode(shakespeare)) == shakespeare


# --- training -------------------------------------------------------------------------------

def test_train_aaabdaaabac():
    # aaabdaaabac: (a,a) is the most frequent pair (4) -> 256: [256 a b d 256 a b a c].
    # Then (256,a) and (a,b) both occur twice; the smaller pair (97,98) wins -> 257:
    # [256 257 d 256 257 a c]. Then (256,257) occurs twice -> 258: [258 d 258 a c].
    tok = BPETokenizer().train("aaabdaaabac", 256 + 3)
    assert tok.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"
    assert tok.vocab[258] == b"aaab" and tok.vocab_size == 259


def test_train_deterministic_and_matches_naive():
    a = BPETokenizer().train(_SAMPLE, 256 + 60)
    b = BPETokenizer().train(_SAMPLE, 256 + 60)
    assert list(a.merges.items()) == list(b.merges.items())
    assert a.merges == naive_train(_SAMPLE, 60, "gpt2")


@settings(max_examples=60, deadline=None)
@given(st.text(st.sampled_from("aab cd\n"), max_size=60), st.integers(0, 20),
       st.sampled_from(["gpt2", "gpt4", r"\S+|\s+"]))
def test_train_incremental_equals_full_recount(text, num_merges, pattern):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # small texts run out of pairs
        tok = BPETokenizer(pattern=pattern).train(text, 256 + num_merges, progress=False)
    merges = naive_train(text, num_merges, pattern)
    assert list(tok.merges.items()) == list(merges.items())
    assert tok.encode(text) == naive_encode(tok, text)
    assert tok.decode(tok.encode(text)) == text


def test_train_vocab_too_small():
    with pytest.raises(ValueError, match="255"):
        BPETokenizer().train("abc", 255)
    with pytest.raises(ValueError, match="256"):
        BPETokenizer().train("abc", 256, special_tokens=[EOT])
    with pytest.raises(TypeError):
        BPETokenizer().train("abc", 300.0)
    with pytest.warns(UserWarning, match="no more pairs"):
        tok = BPETokenizer().train("ab", 300, special_tokens=[EOT])
    assert tok.special_tokens == {EOT: 257} and tok.vocab_size == 258


def test_train_special_tokens(trained):
    assert trained.vocab_size == 256 + 120 + 1
    assert trained.special_tokens == {EOT: 376} and trained.eot_token == 376
    s = "Hello" + EOT + " world" + EOT
    ids = trained.encode(s, allowed_special={EOT})
    assert ids.count(376) == 2 and trained.decode(ids) == s
    assert trained.encode(s, allowed_special="all") == ids
    # specials are cut out of the training text: no merge crosses or learns them
    tok = BPETokenizer().train(EOT.join(["abc de"] * 50), 256 + 5, special_tokens=[EOT])
    assert len(tok.merges) == 4
    assert all(b"<" not in tok.vocab[i] for i in tok.merges.values())
    assert BPETokenizer().train("abab", 257, special_tokens=None).special_tokens == {}


def test_train_rebuilds_derived_state():
    tok = BPETokenizer(pattern=r"\S+|\s+")
    assert tok.encode("a,a") == [97, 44, 97]            # fills the chunk cache
    tok.train("a,a a,a", 256 + 2)                       # (44,97) ties (97,44) at 2: smaller wins
    assert tok.merges == {(44, 97): 256, (97, 256): 257}
    assert tok.encode("a,a") == [257]                   # the cache was cleared
    with pytest.warns(UserWarning, match="no more pairs"):
        tok.train("a,a a,a", 256 + 2, pattern="gpt2")   # chunks a , a ' a' , a: one pair
    assert tok.encode("a,a") == [97, 44, 97]            # the pattern was recompiled


# --- encoding and decoding ------------------------------------------------------------------

_PRESETS = {name: BPETokenizer(pattern=name) for name in PATTERNS}


@settings(max_examples=300, deadline=None)
@given(ascii_texts)
def test_ascii_twins_split_as_presets(s):
    """On ASCII text the presets run as `re` twins (faster); they must split the same."""
    for tok in _PRESETS.values():
        assert tok._ascii_re.findall(s) == tok._compiled.findall(s)
        assert tok._split(s + "é") == tok._compiled.findall(s + "é")
    assert BPETokenizer(pattern=r"\w+|\W")._ascii_re is None   # custom patterns have no twin


def test_encode_equals_naive_and_tokens_reachable(trained):
    assert trained.encode_ordinary(_SAMPLE) == naive_encode(trained, _SAMPLE)
    # the whole-chunk shortcut is safe: each token's bytes alone merge into that token
    for i in trained.merges.values():
        ids = [trained.byte_ids[b] for b in trained.vocab[i]]
        assert trained._bpe(ids) == [i]


@settings(max_examples=150, deadline=None)
@given(texts)
def test_trained_round_trip(trained, s):
    ids = trained.encode_ordinary(s)
    assert trained.decode(ids) == s
    assert trained.decode_bytes(ids) == s.encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_trained_round_trip_any_str(trained, s):
    assert trained.decode(trained.encode_ordinary(s)) == s


def test_trained_matches_tiktoken(trained):
    """tiktoken with our trained ranks and the gpt4 preset gives our ids (another oracle)."""
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {trained.vocab[i]: i for i in range(trained.vocab_size) if i != trained.eot_token}
    enc = tiktoken.Encoding("trained", pat_str=PATTERNS["gpt4"], mergeable_ranks=ranks,
                            special_tokens={EOT: trained.eot_token})
    text = _SAMPLE + "  x\r\n\r\n 12345678 a'S b'll\n"
    assert trained.encode(text) == enc.encode(text)


def test_special_token_rules(trained):
    s = "a " + EOT + " b"
    with pytest.raises(ValueError, match=regex.escape(repr(EOT))):
        trained.encode(s)                                # disallowed by default, as tiktoken
    as_text = trained.encode(s, disallowed_special=())
    assert 376 not in as_text and trained.decode(as_text) == s
    assert trained.encode(s, disallowed_special=()) == trained.encode_ordinary(s)
    with pytest.raises(ValueError, match="<nope>"):
        trained.encode(s, allowed_special={"<nope>"})
    with pytest.raises(ValueError, match="<nope>"):
        BPETokenizer().encode(s, allowed_special={"<nope>"})
    with pytest.raises(TypeError):
        trained.encode(s, allowed_special="everything")
    assert trained.encode_batch(["a", s], allowed_special="all") == [
        trained.encode("a"), trained.encode(s, allowed_special="all")]
    with pytest.raises(TypeError):
        trained.encode_batch("ab")


def test_bad_input(trained):
    for bad in (b"bytes", None, 3, ["a"]):
        with pytest.raises(TypeError):
            trained.encode(bad)
    with pytest.raises(ValueError, match="token id 377 at position 1"):
        trained.decode([1, 377])
    with pytest.raises(ValueError, match="token id -1"):
        trained.decode([-1])
    with pytest.raises(TypeError):
        trained.decode("abc")
    with pytest.raises(TypeError):
        trained.decode(np.array([1.0, 2.0]))
    assert trained.decode(np.array([104, 105], dtype=np.int32)) == "hi"


def test_lone_surrogates_encode_as_replacement_chars(trained):
    """A str can hold lone surrogates, UTF-8 cannot: they encode as U+FFFD (tiktoken's rule), and a
    surrogate pair as the char it stands for, in encode and in train."""
    assert trained.encode("a\ud800b \udc80") == trained.encode("a\ufffdb \ufffd")
    assert trained.encode_ordinary("\ud83d\ude00!") == trained.encode_ordinary("\U0001F600!")
    assert BPETokenizer().train("x\udc80" * 3, 256 + 2).merges == BPETokenizer().train("x\ufffd" * 3, 256 + 2).merges


def test_patterns_with_groups_split_into_whole_matches():
    """A chunk is the pattern's whole match (as tiktoken), also when the pattern has groups."""
    for text in ("ab cd", "é ab"):
        assert BPETokenizer(pattern=r"(\w+)|\s").encode(text) == list(text.encode("utf-8"))
    tok = BPETokenizer().train("ab ab ab", 257, pattern=r"(\w)(\w)|(\s)")
    assert tok.merges == {(97, 98): 256} and tok.decode(tok.encode("ab ab")) == "ab ab"


def test_decode_invalid_utf8(trained):
    assert trained.decode([0x80]) == "\ufffd"
    assert trained.decode_bytes([0x80, 104]) == b"\x80h"
    assert trained.decode([0xE6, 0x9D]) == "\ufffd"      # a cut-off 3-byte char


# --- dicts and files ------------------------------------------------------------------------

def test_save_load_and_dict_round_trip(trained, tmp_path):
    path = tmp_path / "tok.bpe"
    trained.save(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("tinylm-bpe 1\npattern ") and "special 376 " in text
    loaded = BPETokenizer.load(path)
    assert loaded.to_dict() == trained.to_dict()
    assert loaded.encode(_SAMPLE) == trained.encode(_SAMPLE)
    d = json.loads(json.dumps(trained.to_dict()))
    for tok in (BPETokenizer.from_dict(d), tokenizer_from_dict(d)):
        assert tok.encode(_SAMPLE + EOT, allowed_special="all") == \
            trained.encode(_SAMPLE + EOT, allowed_special="all")


@pytest.mark.parametrize("body, line, message", [
    ("not a header\n", 1, "header"),
    ('tinylm-bpe 1\npattern "gpt2"\nbytes identity\nmerge 97 97\n', 4, "merge"),
    ('tinylm-bpe 1\npattern "gpt2"\nmerge 97 97 256\nmerge 256 300 257\n', 4, "300"),
    ('tinylm-bpe 1\npattern "gpt2"\nmerge 97 97 256\nmerge 97 98 256\n', 4, "256"),
    ('tinylm-bpe 1\npattern "(unclosed"\n', 2, "pattern"),
    ('tinylm-bpe 1\npattern "gpt2"\nspecial 300 <|endoftext|>\n', 3, "special"),
    ('tinylm-bpe 1\npattern "gpt2"\n\nbytes 1 2 3\n', 4, "256"),
    ('tinylm-bpe 1\npattern "gpt2"\nvocab 12\n', 3, "vocab"),
    ('tinylm-bpe 1\n# no pattern\n', 2, "pattern"),
])
def test_load_malformed(tmp_path, body, line, message):
    path = tmp_path / "bad.bpe"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bad\.bpe:{line}: .*{message}"):
        BPETokenizer.load(path)


# --- GPT-2 ----------------------------------------------------------------------------------

@needs_gpt2
def test_gpt2_known_ids(gpt2):
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.vocab_size == 50257 and gpt2.eot_token == 50256
    assert gpt2.special_tokens == {EOT: 50256}
    assert gpt2.encode(EOT, allowed_special="all") == [50256]
    assert gpt2.decode([15496, 995, 50256]) == "Hello world" + EOT
    with pytest.raises(ValueError, match="50257"):
        gpt2.decode([50257])


def test_gpt2_matches_tiktoken_on_shakespeare(gpt2, tiktoken_gpt2, shakespeare):
    ids = gpt2.encode(shakespeare)
    assert ids == tiktoken_gpt2.encode(shakespeare)
    assert gpt2.decode(ids) == shakespeare


@settings(max_examples=200, deadline=None)
@given(texts)
def test_gpt2_matches_tiktoken(gpt2, tiktoken_gpt2, s):
    ids = gpt2.encode_ordinary(s)
    assert ids == tiktoken_gpt2.encode_ordinary(s)
    assert gpt2.decode(ids) == s


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_gpt2_round_trip_any_str(gpt2, s):
    assert gpt2.decode(gpt2.encode_ordinary(s)) == s


def test_gpt2_lone_surrogates_like_tiktoken(gpt2, tiktoken_gpt2):
    for s in ("\ud800", "a\udc80b", "\U0001F600\ud83d", "\ud83d\ude00 x", "x \udfff\ud800 y"):
        assert gpt2.encode(s) == tiktoken_gpt2.encode(s)


def test_gpt2_special_tokens_like_tiktoken(gpt2, tiktoken_gpt2):
    s = "x" + EOT + "y <|endoftext"
    assert gpt2.encode(s, allowed_special="all") == tiktoken_gpt2.encode(s, allowed_special="all")
    assert gpt2.encode(s, disallowed_special=()) == tiktoken_gpt2.encode(s, disallowed_special=())
    with pytest.raises(ValueError):
        tiktoken_gpt2.encode(s)
    with pytest.raises(ValueError):
        gpt2.encode(s)


@needs_gpt2
def test_gpt2_every_token_is_reachable(gpt2):
    """Each GPT-2 token's bytes merge into that token, so the whole-chunk shortcut is exact."""
    vocab = gpt2.vocab
    bad = [i for i in gpt2.merges.values() if gpt2._bpe([gpt2.byte_ids[b] for b in vocab[i]]) != [i]]
    assert bad == []


@needs_gpt2
def test_gpt2_hf_file_names_and_save_load(gpt2, tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "vocab.json").symlink_to(GPT2_DIR / "encoder.json")
    (hf / "merges.txt").symlink_to(GPT2_DIR / "vocab.bpe")
    tok = BPETokenizer.from_pretrained(hf)
    assert tok.merges == gpt2.merges and tok.byte_ids == gpt2.byte_ids
    with pytest.raises(FileNotFoundError):
        BPETokenizer.from_pretrained(tmp_path)
    gpt2.save(tmp_path / "gpt2.bpe")
    loaded = BPETokenizer.load(tmp_path / "gpt2.bpe")
    assert loaded.to_dict() == gpt2.to_dict()
    assert loaded.encode("Hello world" + EOT, allowed_special="all") == [15496, 995, 50256]


@needs_gpt2
def test_gpt2_malformed_files(tmp_path):
    lines = (GPT2_DIR / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    enc, bpe = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    enc.symlink_to(GPT2_DIR / "encoder.json")
    bpe.write_text("\n".join(lines[:5] + ["Ġt"] + lines[5:10]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.bpe:6: "):
        BPETokenizer.from_gpt2(enc, bpe)
    bpe.write_text("\n".join(lines[:3] + ["Ġt zzzzqq"]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.bpe:4: .*zzzzqq"):
        BPETokenizer.from_gpt2(enc, bpe)
    bad_json = tmp_path / "vocab.json"
    bad_json.write_text('{"!": 0,\n"\\"": 1,\n"#" 2}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.json: .*line 3"):
        BPETokenizer.from_gpt2(bad_json, bpe)


def test_decode_refuses_floats_and_bools():
    tok = CharTokenizer("abc")
    for bad in ([1.0], [True]):
        with pytest.raises(TypeError, match="token ids must be ints"):
            tok.decode(bad)
    assert tok.decode([np.int64(0), 1]) == "ab"


def test_train_tokenizer_example(tmp_path, capsys):
    path = Path(__file__).resolve().parents[1] / "examples" / "train_tokenizer.py"
    spec = importlib.util.spec_from_file_location("train_tokenizer", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    (tmp_path / "text.txt").write_text("aaabdaaabac", encoding="utf-8")
    example.main(["--input", str(tmp_path / "text.txt"), "--vocab-size", "259", "--out", str(tmp_path / "t.bpe")])
    assert BPETokenizer.load(tmp_path / "t.bpe").merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert "11 bytes" in capsys.readouterr().out
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"error: .*empty\.txt is empty"):   # not a ZeroDivisionError
        example.main(["--input", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "e.bpe")])


# --- long chunks: O(n log n) merging, ids as tiktoken's ---------------------------------------

def _long_texts(n, seed=0):
    """Long single chunks and texts of rare characters, as in benchmarks/bench_tokenizer.py."""
    rng = np.random.default_rng(seed)
    return {"a": "a" * n, "spaces": " " * n + "x",
            "random bytes": rng.integers(0, 256, n, dtype=np.uint8).tobytes().decode("utf-8", "replace"),
            "ab ": "ab " * (n // 3),
            "one word of a and b": "".join(rng.choice(["a", "b"], n))}


@pytest.fixture(scope="module")
def ab_trained():
    """Trained on words of a and b, so long a/b chunks have many merges at every level."""
    rng = np.random.default_rng(1)
    words = [" " + "".join(rng.choice(["a", "b"], rng.integers(1, 12))) for _ in range(3000)]
    return BPETokenizer().train("".join(words) + " " + "a" * 300, 256 + 200)


def test_long_chunks_match_tiktoken_trained(ab_trained):
    """Long chunks take the O(n log n) path; tiktoken with the same ranks gives the same ids."""
    tiktoken = pytest.importorskip("tiktoken")
    tok = ab_trained
    enc = tiktoken.Encoding("ab", pat_str=tok.pattern, mergeable_ranks={tok.vocab[i]: i for i in range(tok.vocab_size)},
                            special_tokens={})
    for name, text in _long_texts(3000).items():
        ids = tok.encode_ordinary(text)
        assert ids == enc.encode_ordinary(text), name
        assert tok.decode(ids) == text
    assert max(map(len, tok._split("a" * 3000))) == 3000          # one chunk: the long path ran


def test_long_chunks_match_tiktoken_gpt2(gpt2, tiktoken_gpt2):
    for name, text in _long_texts(5000, seed=2).items():
        assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text), name


@settings(max_examples=60, deadline=None)
@given(st.text(st.sampled_from("aab ba"), min_size=30, max_size=200))
def test_long_path_equals_naive(ab_trained, s):
    """The linked-list merge (`_bpe_long`) gives the naive recount's ids on any chunk."""
    ids = [ab_trained.byte_ids[b] for b in s.encode()]
    assert ab_trained._bpe_long(list(ids)) == naive_encode(BPETokenizer(ab_trained.merges, pattern=r"[\s\S]+"), s)


class _Rank(int):
    """A rank that counts its comparisons (in `_Counting.work`)."""

    def _count(self, other, op):
        _Counting.work += 1
        return op(int(self), int(other))

    __lt__ = lambda self, o: self._count(o, int.__lt__)      # noqa: E731
    __le__ = lambda self, o: self._count(o, int.__le__)      # noqa: E731
    __gt__ = lambda self, o: self._count(o, int.__gt__)      # noqa: E731
    __ge__ = lambda self, o: self._count(o, int.__ge__)      # noqa: E731
    __eq__ = lambda self, o: self._count(o, int.__eq__)      # noqa: E731
    __hash__ = int.__hash__


class _Counting(dict):
    """pair -> rank table that counts its lookups."""
    work = 0

    def get(self, key, default=None):
        _Counting.work += 1
        return super().get(key, default)

    def __getitem__(self, key):
        _Counting.work += 1
        return super().__getitem__(key)


def test_long_chunk_merge_is_not_quadratic(ab_trained):
    """Work (pair-rank lookups + rank comparisons) for a chunk of 4n bytes is about 4x that of
    n bytes, not 16x as for the classic loop (min over all pairs per merge)."""
    tok = BPETokenizer(ab_trained.merges)
    tok._ranks = _Counting({pair: _Rank(r) for pair, r in tok._ranks.items()})
    rng = np.random.default_rng(3)
    work = {}
    for n in (2000, 8000):
        for text in ("a" * n, "".join(rng.choice(["a", "b"], n))):
            assert len(tok._split(text)) == 1
            _Counting.work = 0
            tok._cache.clear()
            assert tok.encode_ordinary(text) == ab_trained.encode_ordinary(text)
            work[n, text[:2] == "aa"] = _Counting.work
    for kind in (True, False):
        assert work[8000, kind] <= 5 * work[2000, kind], work
        assert work[2000, kind] >= 2000                       # it did count: one lookup a pair at least


def test_chunk_cache_is_a_bounded_lru():
    tok = BPETokenizer().train("aa bb cc dd ee " * 5, 256 + 6)
    tok.cache_max = 4
    for chunk in ("aa", " bb", " cc", " dd"):   # one call each: the chunks of one call are equally recent
        tok.encode(chunk)
    assert set(tok._cache) == {"aa", " bb", " cc", " dd"}
    tok.encode("aa")                            # used again: now the most recent
    tok.encode(" ee")                           # evicts the least recently used: ' bb'
    assert set(tok._cache) == {"aa", " cc", " dd", " ee"}
    assert len(tok._cache) <= tok.cache_max
    long = "x" * (tok.cache_max_chars + 1)
    assert tok.decode(tok.encode(long)) == long and long not in tok._cache
    for text in ("ä ö ü é ñ", "日本語のテキスト", "\ufffd\ufffd x"):   # the non-ASCII path caches pieces
        assert tok.decode(tok.encode(text)) == text and len(tok._cache) <= tok.cache_max


def test_decode_bad_ids_clear_errors(trained):
    for tok in (trained, CharTokenizer("abc")):
        for bad in (None, 5, 2.5):
            with pytest.raises(TypeError, match="ids must be a sequence of ints"):
                tok.decode(bad)
        assert tok.decode(i for i in [0, 1]) == tok.decode([0, 1])      # a generator is read once
        for bad in ([2**70], [-1], [10**11], np.array([2**63], dtype=np.uint64)):
            with pytest.raises(ValueError, match="not in the vocabulary"):
                tok.decode(bad)
        for bad in ([1.0], [np.float32(1)], [None], ["a"], np.array([0.5])):
            with pytest.raises(TypeError, match="ints|integers"):
                tok.decode(bad)


@pytest.mark.parametrize("whole", [False, True])
def test_non_ascii_cut_paths_match_tiktoken(trained, whole, monkeypatch):
    """Non-ASCII text is cut where no merge joins two bytes: chunk by chunk (cached), or, for
    texts of mostly new chunks, the whole text at once (`_TEXT_CUT_MIN`, lowered here to 0)."""
    tiktoken = pytest.importorskip("tiktoken")
    import tinylm.tokenizers as T
    monkeypatch.setattr(T, "_TEXT_CUT_MIN", -1 if whole else 10**9)
    ranks = {trained.vocab[i]: i for i in range(trained.vocab_size) if i != trained.eot_token}
    enc = tiktoken.Encoding("trained", pat_str=PATTERNS["gpt4"], mergeable_ranks=ranks, special_tokens={})
    calls = []
    real = BPETokenizer._encode_text_cut
    monkeypatch.setattr(BPETokenizer, "_encode_text_cut", lambda self, *a: calls.append(1) or real(self, *a))
    rng = np.random.default_rng(4)
    for text in (_SAMPLE, rng.integers(0, 256, 3000, dtype=np.uint8).tobytes().decode("utf-8", "replace"),
                 "ä" * 500 + " é" * 50, "x\ud800y Ça"):
        tok = BPETokenizer(trained.merges, pattern="gpt4")
        assert tok.encode_ordinary(text) == enc.encode_ordinary(text)
        assert tok.encode_ordinary(text) == enc.encode_ordinary(text)          # warm: the same
    assert bool(calls) == whole
    skipping = BPETokenizer(trained.merges, pattern=r"\w+")                    # chunks do not cover the text
    assert skipping.decode(skipping.encode("Ça va, déjà?")) == "Çavadéjà"


@settings(max_examples=100, deadline=None)
@given(texts)
def test_gpt2_whole_text_cut_matches_tiktoken(gpt2, tiktoken_gpt2, s):
    import tinylm.tokenizers as T
    old, T._TEXT_CUT_MIN = T._TEXT_CUT_MIN, -1
    try:
        gpt2._cache.clear()
        assert gpt2.encode_ordinary(s) == tiktoken_gpt2.encode_ordinary(s)
    finally:
        T._TEXT_CUT_MIN = old
