"""Reading files tinylm did not write: JSON with a size limit and a depth limit.

Every loader of a file that may come from a stranger (safetensors headers, checkpoint meta,
tokenizer files, GPT-2's config.json and encoder.json) parses its JSON here, so that a hostile
file gets a ValueError naming the file instead of a RecursionError, a MemoryError or a hang.
The depth is counted on the brackets outside strings before `json` sees the text, so a file
nested 100,000 deep is refused in linear time without recursing.

Leaves out: each file kind's own fields (checked by its loader, which names the field).
"""
import json
import re

MAX_JSON_BYTES = 256 * 2**20   # encoder.json is 1 MB, a checkpoint's meta.json a few KB
MAX_JSON_DEPTH = 64            # tinylm's own files nest at most 6 deep

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def parse_json(text, where, max_depth=MAX_JSON_DEPTH):
    """`text` (str, or bytes as UTF-8) -> a Python object; a ValueError naming `where` otherwise."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    depth = 0
    for b in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if b in "[{" else -1
        if depth > max_depth:
            raise ValueError(f"{where}: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:    # JSONDecodeError, or an int of more than 4300 digits
        raise ValueError(f"{where}: not valid JSON ({e})") from None


def read_json(path, max_bytes=MAX_JSON_BYTES, max_depth=MAX_JSON_DEPTH):
    """The JSON file at `path`, read with a size limit and parsed with a depth limit."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: larger than the {max_bytes}-byte limit for a JSON file")
    return parse_json(data, str(path), max_depth)
