"""Chapter 6 exercises, solved.

1. Write BPE encoding in plain Python: given the ordered merges {(a, b): new_id}, cut the text
   with GPT-2's regex, and in each chunk merge, again and again, the pair that was learned
   first (the lowest new id) wherever it occurs. Compare with `BPETokenizer.encode`.
2. Rebuild GPT-2's byte -> unicode table from its rule (the 188 printable bytes stand for
   themselves, the other 68 become chr(256), chr(257), ... in byte order) and use its inverse
   to read the vocabulary entry 'Ġworld' as bytes.
"""
import regex

from tinylm.tokenizers import PATTERNS, BPETokenizer, bytes_to_unicode


def encode(text, merges, pattern=PATTERNS["gpt2"]):
    out = []
    for chunk in regex.findall(pattern, text):
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pairs = set(zip(ids, ids[1:]))
            pair = min(pairs, key=lambda p: merges.get(p, float("inf")))   # the earliest-learned pair
            if pair not in merges:
                break                                                    # nothing left to merge
            new, merged, i = merges[pair], [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    merged.append(new)
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            ids = merged
        out += ids
    return out


def byte_table():
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    table, n = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


def check():
    text = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
            "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 3
    tok = BPETokenizer().train(text, vocab_size=256 + 60)
    held_out = "Speak, citizens: are you resolved to proceed further? Hear me, all!"
    for s in (text, held_out, "", "ünïcödé speak"):
        assert encode(s, tok.merges) == tok.encode(s), s
    assert len(encode(held_out, tok.merges)) < len(held_out.encode("utf-8"))   # it compresses

    table = byte_table()
    assert table == bytes_to_unicode()
    assert len(set(table.values())) == 256 and all(c.isprintable() for c in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    inverse = {c: b for b, c in table.items()}
    assert bytes(inverse[c] for c in "Ġworld") == b" world"


if __name__ == "__main__":
    check()
    print("ch06_bpe: all checks passed")
