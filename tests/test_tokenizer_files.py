"""Tokenizer files from strangers: tinylm/tokenizers.py's loaders against hostile input.

Each loader (`BPETokenizer.load`, `BPETokenizer.from_dict`, `BPETokenizer.from_gpt2` on
encoder.json + vocab.bpe, `CharTokenizer.load`) must answer a malformed file with a ValueError
(or TypeError) that names the file, in bounded time and memory; never a RecursionError,
MemoryError, KeyError or hang. Split patterns in files are code: a custom one loads only with
trust_pattern=True, is bounded in size, and splits under a timeout.

The fuzz tests mutate valid files (bit flips, truncation, splices, deep JSON, huge numbers) and
run each load under a time cap (an interval timer) and, on Linux, a memory cap (RLIMIT_AS,
lowered for the duration of the load). TINYLM_FUZZ_EXAMPLES raises their example count (default
40 per loader), e.g. `TINYLM_FUZZ_EXAMPLES=2000 python -m pytest tests/test_tokenizer_files.py`.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

try:
    import resource                  # Unix only: the memory caps
except ImportError:
    resource = None

from tinylm.tokenizers import (MAX_TOKEN_ID, MAX_UNUSED_IDS, PATTERNS, BPETokenizer, CharTokenizer,
                               bytes_to_unicode, tokenizer_from_dict)

EOT = "<|endoftext|>"
FUZZ_EXAMPLES = int(os.environ.get("TINYLM_FUZZ_EXAMPLES", "40"))
TIME_CAP_S = 20.0                 # per load; the loads here take milliseconds
MEMORY_CAP = 2 * 2**30            # bytes of address space a load may add


@pytest.fixture(scope="module")
def tok():
    text = "the cat sat on the mat; the dog ate the hat. Ça va? 東京 " * 10
    return BPETokenizer(pattern="gpt4").train(text, 256 + 25 + 1, special_tokens=[EOT])


def write_gpt2_files(tok, folder):
    """`tok` (identity byte ids) as OpenAI's encoder.json + vocab.bpe, in `folder`."""
    b2u = bytes_to_unicode()
    name = {i: "".join(b2u[b] for b in tok.vocab[i]) for i in range(256)}
    encoder = {name[i]: i for i in range(256)}
    lines = ["#version: 0.2"]
    for (a, b), new in tok.merges.items():
        name[new] = name[a] + name[b]
        encoder[name[new]] = new
        lines.append(f"{name[a]} {name[b]}")
    encoder.update(tok.special_tokens)
    (folder / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    (folder / "vocab.bpe").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "encoder.json", folder / "vocab.bpe"


def raises_naming(exc, path, match=""):
    """pytest.raises for `exc` whose message names `path` (its file name) and matches `match`."""
    return pytest.raises(exc, match=rf"{path.name}.*{match}" if match else path.name)


# --- deep JSON, huge ids, unused ids --------------------------------------------------------

def test_deep_json_is_a_valueerror_naming_the_file(tok, tmp_path):
    deep = "[" * 5000 + "]" * 5000
    path = tmp_path / "chars.json"
    path.write_text('{"type": "char", "chars": ' + deep + "}", encoding="utf-8")
    with raises_naming(ValueError, path, "deeper"):
        CharTokenizer.load(path)
    enc, bpe = write_gpt2_files(tok, tmp_path)
    enc.write_text('{"a": ' + deep + "}", encoding="utf-8")
    with raises_naming(ValueError, enc, "deeper"):
        BPETokenizer.from_gpt2(enc, bpe)
    for lines in (f"pattern {deep}", f'pattern "gpt2"\nspecial 300 {deep}'):
        path = tmp_path / "deep.bpe"
        path.write_text(f"tinylm-bpe 1\n{lines}\n", encoding="utf-8")
        with raises_naming(ValueError, path, "deeper"):
            BPETokenizer.load(path)


def test_huge_special_token_id(tok, tmp_path):
    path = tmp_path / "tok.bpe"
    tok.save(path)
    text = path.read_text(encoding="utf-8")
    eot = tok.special_tokens[EOT]
    for bad, message in ((99999999999, "special"), (2**31, "special"), (-1, "special"),
                         ("9" * 5000, "special"), (eot + MAX_UNUSED_IDS + 1, "unused")):
        path.write_text(text.replace(f"special {eot} ", f"special {bad} "), encoding="utf-8")
        with raises_naming(ValueError, path, message):
            BPETokenizer.load(path)
    path.write_text(text.replace(f"special {eot} ", f"special {eot + MAX_UNUSED_IDS} "), encoding="utf-8")
    assert BPETokenizer.load(path).vocab_size == eot + MAX_UNUSED_IDS + 1      # the bound is inclusive
    d = tok.to_dict()
    for bad in (99999999999, -1, 1.5, True, "3", None):
        with pytest.raises(ValueError, match=r"ckpt\.npz: field 'special_tokens'"):
            BPETokenizer.from_dict({**d, "special_tokens": {EOT: bad}}, source="ckpt.npz")
    with pytest.raises(ValueError, match=r"ckpt\.npz: .*unused"):
        tokenizer_from_dict({**d, "special_tokens": {EOT: 10**6}}, source="ckpt.npz")
    with pytest.raises(ValueError, match=str(MAX_TOKEN_ID)):
        BPETokenizer(special_tokens={EOT: 99999999999})                      # in code too


@pytest.mark.parametrize("line, message", [
    ("merge 97 97 99999999999", "merge"),
    ("merge -1 97 300", "merge"),
    ("merge 97 97 1" + "0" * 5000, "merge"),
    ("merge 97 97 30.5", "merge"),
    ("merge 97 97", "merge"),
    ("merge 97 97 300 301", "merge"),
    ("bytes " + " ".join(map(str, range(255))) + " 99999999999", "bytes"),
    ("bytes " + " ".join(["7"] * 256), "256 distinct"),
    ("special 300", "special"),
    ('special 300 ""', "special"),
    ('special x "<a>"', "special"),
    ("\x00\xff", "unknown line kind"),
])
def test_malformed_bpe_lines(tmp_path, line, message):
    path = tmp_path / "bad.bpe"
    path.write_text(f'tinylm-bpe 1\npattern "gpt2"\n{line}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bad\.bpe:3: .*{message}"):
        BPETokenizer.load(path)


def test_duplicates_and_bad_fields_in_dicts(tok):
    d = tok.to_dict()
    cases = [({"merges": d["merges"] + [d["merges"][0]]}, rf"'merges'\[{len(d['merges'])}\] repeats"),
             ({"merges": "x"}, "'merges' must be a list"),
             ({"merges": [[97, 97]]}, r"'merges'\[0\]"),
             ({"merges": [[97, 97, True]]}, r"'merges'\[0\]"),
             ({"merges": [[97, 97, 99999999999]]}, r"'merges'\[0\]"),
             ({"merges": [[97, 500, 300]]}, "500"),
             ({"byte_ids": list(range(255))}, "'byte_ids'"),
             ({"byte_ids": [0] * 256}, "256 distinct"),
             ({"special_tokens": {EOT: 97}}, "already taken"),
             ({"special_tokens": [EOT]}, "'special_tokens'"),
             ({"pattern": 5}, "'pattern'"),
             ({"type": "char"}, "not a BPETokenizer dict")]
    for change, message in cases:
        with pytest.raises(ValueError, match=rf"run/ckpt: .*{message}"):
            BPETokenizer.from_dict({**d, **change}, source="run/ckpt")
    with pytest.raises(ValueError, match="run/ckpt: field 'chars'"):
        tokenizer_from_dict({"type": "char", "chars": ["a"]}, source="run/ckpt")


def test_malformed_gpt2_files(tok, tmp_path):
    enc, bpe = write_gpt2_files(tok, tmp_path)
    encoder = json.loads(enc.read_text(encoding="utf-8"))
    merges = bpe.read_text(encoding="utf-8").split("\n")
    some = next(k for k, i in encoder.items() if i == 270)
    for bad in (-1, 99999999999, 2**31, 1.5, True, None, "3", [1]):
        enc.write_text(json.dumps({**encoder, some: bad}), encoding="utf-8")
        with raises_naming(ValueError, enc, "ids must be ints"):
            BPETokenizer.from_gpt2(enc, bpe)
    enc.write_text(json.dumps({**encoder, "zz": 270}), encoding="utf-8")
    with raises_naming(ValueError, enc, "share the id 270"):
        BPETokenizer.from_gpt2(enc, bpe)
    enc.write_text(json.dumps({**encoder, "zz": 300 + MAX_UNUSED_IDS + 50}), encoding="utf-8")
    with raises_naming(ValueError, enc, "unused"):
        BPETokenizer.from_gpt2(enc, bpe)
    enc.write_text(json.dumps([1, 2]), encoding="utf-8")
    with raises_naming(ValueError, enc, "JSON object"):
        BPETokenizer.from_gpt2(enc, bpe)
    enc.write_text(json.dumps(encoder), encoding="utf-8")
    for lines, lineno in ((merges[:5] + [merges[3]] + merges[5:], 6),       # a duplicate merge
                          (merges[:3] + ["a b c"], 4), (merges[:3] + ["Ġ zzzz"], 4)):
        bpe.write_text("\n".join(lines), encoding="utf-8")
        with pytest.raises(ValueError, match=rf"vocab\.bpe:{lineno}: "):
            BPETokenizer.from_gpt2(enc, bpe)
    bpe.write_bytes(b"#version: 0.2\n\xff\xfe\n")
    with raises_naming(ValueError, bpe, "UTF-8"):
        BPETokenizer.from_gpt2(enc, bpe)


def test_char_tokenizer_files(tmp_path):
    path = tmp_path / "c.json"
    for body, message in (('{"type": "char", "chars": 5}', "'chars'"), ("[1, 2]", "CharTokenizer dict"),
                          ('{"type": "char", "chars": "a' + "\\u0000" * 3 + '"', "JSON"),
                          ('{"type": "char", "chars": 1' + "0" * 5000 + "}", "JSON")):
        path.write_text(body, encoding="utf-8")
        with raises_naming(ValueError, path, message):
            CharTokenizer.load(path)


# --- patterns are code: named presets, trust_pattern, size and time bounds --------------------

def test_file_patterns_are_named_presets(tok, tmp_path):
    path = tmp_path / "tok.bpe"
    tok.save(path)
    text = path.read_text(encoding="utf-8")
    assert 'pattern "gpt4"' in text and tok.to_dict()["pattern"] == "gpt4"
    for written in ("cl100k_base", PATTERNS["gpt4"]):           # tiktoken's name; older files' full text
        path.write_text(text.replace('pattern "gpt4"', f"pattern {json.dumps(written)}"), encoding="utf-8")
        assert BPETokenizer.load(path).pattern == PATTERNS["gpt4"]
    custom = r"\w+|\s+|[^\w\s]+"
    path.write_text(text.replace('pattern "gpt4"', f"pattern {json.dumps(custom)}"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"tok\.bpe:2: .*not one of the known patterns.*trust_pattern=True"):
        BPETokenizer.load(path)
    loaded = BPETokenizer.load(path, trust_pattern=True)
    assert loaded.pattern == custom and loaded.decode(loaded.encode("héllo, wörld")) == "héllo, wörld"
    d = {**tok.to_dict(), "pattern": custom}
    with pytest.raises(ValueError, match="ckpt: field 'pattern'.*trust_pattern=True"):
        tokenizer_from_dict(d, source="ckpt")
    assert tokenizer_from_dict(d, trust_pattern=True).pattern == custom
    assert BPETokenizer(pattern=custom).pattern == custom       # patterns given in code stay allowed


def test_trusted_pattern_that_backtracks_raises_in_bounded_time(tok, tmp_path):
    path = tmp_path / "slow.bpe"
    tok.save(path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('pattern "gpt4"', 'pattern "(?:a|aa)+$|\\\\s"'), encoding="utf-8")
    slow = BPETokenizer.load(path, trust_pattern=True)
    slow.pattern_timeout, slow.pattern_timeout_per_char = 0.2, 0.0
    assert slow.encode("aa aa") == slow.encode_ordinary("aa aa")       # fine on a harmless text
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"slow\.bpe.*catastrophic backtracking"):
        slow.encode("a" * 60 + "é")
    assert time.perf_counter() - t < 10
    with pytest.raises(ValueError, match=r"slow\.bpe.*catastrophic backtracking"):
        slow.train("a" * 60 + "é", 260)             # training with the file's pattern: guarded too


@pytest.mark.skipif(resource is None, reason="needs the resource module (Unix) for the memory cap")
@pytest.mark.parametrize("pattern, message", [
    ("a{1000000000}", "too large"), ("(?:a{1000}){1000}", "too large"), ("(?:(?:a{100}){100}){100}", "too large"),
    ("[ab]{4294967296}", "too large"), ("(" * 5000 + ")" * 5000, "deeper"), ("(unclosed", "bad pattern")])
def test_trusted_patterns_are_bounded(tok, tmp_path, pattern, message):
    """Refused before `regex` compiles them (it unrolls counted repeats: a{1000000000} asks for
    gigabytes). Run in a subprocess under a 1.5 GiB address-space cap, so that a loader that did
    compile it fails with MemoryError there instead of exhausting this machine."""
    path = tmp_path / "big.bpe"
    tok.save(path)
    text = path.read_text(encoding="utf-8").replace('pattern "gpt4"', f"pattern {json.dumps(pattern)}")
    path.write_text(text, encoding="utf-8")
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))\n"
            "from tinylm.tokenizers import BPETokenizer\n"
            "try:\n"
            "    BPETokenizer.load(sys.argv[1], trust_pattern=True)\n"
            "except ValueError as e:\n"
            "    print('ValueError:', e)\n")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ValueError:" in run.stdout and "big.bpe" in run.stdout and message in run.stdout, run.stdout


# --- fuzzing: mutated valid files --------------------------------------------------------------

class _TimeCap(Exception):
    pass


@contextlib.contextmanager
def capped(seconds=TIME_CAP_S, extra_bytes=MEMORY_CAP):
    """Raise _TimeCap after `seconds` (interval timer) and, on Linux, MemoryError beyond
    `extra_bytes` more address space (RLIMIT_AS's soft limit, restored afterwards). Where
    neither exists (Windows), the load runs uncapped."""
    def alarm(signum, frame):
        raise _TimeCap(f"over {seconds} s")
    timer = hasattr(signal, "setitimer")
    if timer:
        old_handler = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    limits = resource.getrlimit(resource.RLIMIT_AS) if resource else None
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap, hard = used + extra_bytes, limits[1]
        if hard == resource.RLIM_INFINITY or cap < hard:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (OSError, ValueError, TypeError, AttributeError):
        pass                                    # no /proc or no resource: the time cap only
    try:
        yield
    finally:
        if limits:
            resource.setrlimit(resource.RLIMIT_AS, limits)
        if timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)


_NUMBERS = [b"99999999999", b"-1", b"1e999", b"1.5", b"2147483648", b"9" * 5000, b"true", b"null", b'"7"']
mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9)),
    st.tuples(st.just("splice"), st.integers(0, 10**9), st.integers(0, 10**9), st.integers(1, 200)),
    st.tuples(st.just("insert"), st.integers(0, 10**9), st.binary(min_size=1, max_size=20)),
    st.tuples(st.just("deep"), st.integers(0, 10**9), st.sampled_from([b"[", b"{", b'{"a":', b"[[{"]),
              st.sampled_from([100, 5000, 100_000])),
    st.tuples(st.just("number"), st.integers(0, 10**9), st.sampled_from(_NUMBERS)),
)


def mutate(data, ops):
    """Apply the mutations `ops` to the bytes `data`."""
    for op in ops:
        n = max(len(data), 1)
        if op[0] == "flip":
            i = op[1] % n
            if data:
                data = data[:i] + bytes([data[i] ^ (1 << op[2])]) + data[i + 1:]
        elif op[0] == "truncate":
            data = data[:op[1] % n]
        elif op[0] == "splice":                     # copy a span to another place
            i, j = op[1] % n, op[2] % n
            data = data[:j] + data[i:i + op[3]] + data[j:]
        elif op[0] == "insert":
            i = op[1] % n
            data = data[:i] + op[2] + data[i:]
        elif op[0] == "deep":
            i = op[1] % n
            data = data[:i] + op[2] * op[3] + data[i:]
        elif op[0] == "number":                     # replace the digit run at or after i
            i = op[1] % n
            start = next((k for k in range(i, len(data)) if data[k:k + 1].isdigit()), None)
            if start is not None:
                end = start
                while end < len(data) and data[end:end + 1].isdigit():
                    end += 1
                data = data[:start] + op[2] + data[end:]
    return data


def check_load(load, path, name):
    """Run `load()` under the caps: a tokenizer that works, or ValueError/TypeError naming `name`."""
    try:
        with capped():
            t = load()
            ids = t.encode("the cat sat. Ça va? 12 東京", allowed_special="all")
            if t.pattern in PATTERNS.values():     # a custom pattern may skip text (as in tiktoken)
                assert t.decode(ids) == "the cat sat. Ça va? 12 東京"
            assert t.vocab_size <= len(t.vocab) + MAX_UNUSED_IDS
    except (ValueError, TypeError) as e:
        assert name in str(e), f"{type(e).__name__} does not name {name}: {e}"


fuzz = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@fuzz
@given(ops=st.lists(mutation, min_size=1, max_size=3), trust=st.booleans())
def test_fuzz_bpe_file(tok, tmp_path, ops, trust):
    path = tmp_path / "fuzz.bpe"
    tok.save(path)
    data = path.read_bytes()
    if trust:                                      # a custom pattern, loaded with trust_pattern=True
        data = data.replace(b'pattern "gpt4"', b'pattern "\\\\w+|\\\\s+|[^\\\\w\\\\s]+"')
    path.write_bytes(mutate(data, ops))
    check_load(lambda: BPETokenizer.load(path, trust_pattern=trust), path, "fuzz.bpe")


@fuzz
@given(ops=st.lists(mutation, min_size=1, max_size=3))
def test_fuzz_dict_file(tok, tmp_path, ops):
    """A checkpoint's tokenizer dict, as JSON: parsed with tinylm.validate, then from_dict."""
    from tinylm.validate import read_json
    path = tmp_path / "fuzz_tok.json"
    path.write_text(json.dumps(tok.to_dict(), ensure_ascii=False), encoding="utf-8")
    path.write_bytes(mutate(path.read_bytes(), ops))
    check_load(lambda: tokenizer_from_dict(read_json(path), source=str(path)), path, "fuzz_tok.json")


@fuzz
@given(ops=st.lists(mutation, min_size=1, max_size=3), which=st.sampled_from(["encoder.json", "vocab.bpe"]))
def test_fuzz_gpt2_files(tok, tmp_path, ops, which):
    enc, bpe = write_gpt2_files(tok, tmp_path)
    target = tmp_path / which
    target.write_bytes(mutate(target.read_bytes(), ops))
    check_load(lambda: BPETokenizer.from_gpt2(enc, bpe), target, which)


@fuzz
@given(ops=st.lists(mutation, min_size=1, max_size=3))
def test_fuzz_char_file(tmp_path, ops):
    path = tmp_path / "fuzz_chars.json"
    CharTokenizer.from_text("the cat sat. Ça va? 12 東京 ").save(path)
    path.write_bytes(mutate(path.read_bytes(), ops))
    try:
        with capped():
            t = CharTokenizer.load(path)
            assert t.decode(t.encode(t.decode(list(range(t.vocab_size))))) == t.decode(list(range(t.vocab_size)))
    except (ValueError, TypeError) as e:
        assert "fuzz_chars.json" in str(e), f"{type(e).__name__} does not name the file: {e}"
