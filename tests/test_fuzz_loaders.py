"""Hypothesis fuzz tests over every file loader tinylm's I/O ring owns: safetensors, checkpoints
(.npz + meta.json) and GPT-2 folders (config.json + model.safetensors). Each runs
tests/fuzz_loaders.py in a child process (sys.executable) whose address space is capped with
RLIMIT_AS and whose every case has a time cap; only ValueError/TypeError naming the file may come
out. TINYLM_FUZZ_EXAMPLES=N raises the example count (and randomises the search) for a long run.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT = {"safetensors": 100, "checkpoint": 80, "gpt2": 60}     # 1-2 s each on a 2-core x86-64


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/status: Linux only")
@pytest.mark.parametrize("kind", sorted(DEFAULT))
def test_fuzzed_files_give_only_errors_that_name_the_file(tmp_path, kind):
    examples = int(os.environ.get("TINYLM_FUZZ_EXAMPLES", DEFAULT[kind]))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(REPO / "tests" / "fuzz_loaders.py"), kind, str(examples), str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=60 + examples)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert f"{kind}: {examples} cases" in r.stdout
