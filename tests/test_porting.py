"""A PyTorch-style teaching script (tests/porting/teach.py) runs on tinylm with only its imports renamed:
Dataset/DataLoader, an LSTM language model, a GPT block with nn.GELU(), CrossEntropyLoss, AdamW with a
cosine schedule, torch.nn.utils.clip_grad_norm_. It trains, and its loss falls."""
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "porting" / "teach.py"
IMPORTS = ("import tinylm as torch", "import tinylm.nn as nn", "import tinylm.nn.functional as F",
           "from tinylm.utils.data import DataLoader, Dataset")


def test_the_script_names_tinylm_only_in_its_imports():
    lines = SCRIPT.read_text().splitlines()
    assert all(line in lines for line in IMPORTS)
    rest = [line for line in lines if line not in IMPORTS and not line.startswith(('"""', "A PyTorch", "With the"))]
    assert not [line for line in rest if "tinylm" in line]


def test_the_teaching_script_trains_and_its_loss_falls():
    out = subprocess.run([sys.executable, str(SCRIPT), "40"], capture_output=True, text=True, timeout=120,
                         cwd=SCRIPT.parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    first, last = map(float, re.search(r"loss ([\d.]+) -> ([\d.]+)", out.stdout).groups())
    assert last < 0.5 * first, out.stdout
