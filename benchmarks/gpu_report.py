"""The GPU session's report: what benchmarks/gpu_session.sh left in $OUT, as report.json and report.md.

    OUT_DIR=out/gpu-session RUN_DIR=out/gpu-char6L python benchmarks/gpu_report.py

Reads env.txt, tests.log, kernels.log (pytest's summary lines), fused_off.json / fused_on.json
(bench_train.py results) and the training run's log.csv; a part that did not run is reported
as not run. Standard library only.
"""
import csv
import json
import os
import re
from pathlib import Path


def _text(folder, name):
    path = folder / name
    return path.read_text(errors="replace") if path.exists() else None


def pytest_counts(log):
    """pytest's last summary line as {"passed": n, "failed": n, ...}; None when the log is absent."""
    if log is None:
        return None
    lines = [line for line in log.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b", line)]
    if not lines:
        return {"summary": "no pytest summary line (cut short?)"}
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", lines[-1])}


def step_times(off, on):
    """ms per step and ratios to PyTorch eager from the two bench_train.py JSON files."""
    step = {}
    if off:
        step["tinylm_fused_off_ms"] = 1e3 * off["tinylm"]["median_s"]
        if "torch" in off:
            step["torch_eager_ms"] = 1e3 * off["torch"]["median_s"]
    if on:
        step["tinylm_fused_on_ms"] = 1e3 * on["tinylm"]["median_s"]
    for key in ("tinylm_fused_off", "tinylm_fused_on"):
        if key + "_ms" in step and "torch_eager_ms" in step:
            step[key + "_over_torch"] = step[key + "_ms"] / step["torch_eager_ms"]
    return step


def report(out, run):
    def load(name):
        text = _text(out, name)
        return json.loads(text) if text else None
    train = None
    log = run / "log.csv"
    if log.exists():
        with log.open(newline="") as f:
            rows = list(csv.DictReader(f))
        train = {"log_rows": len(rows), "last": rows[-1] if rows else None}
    return {"env": _text(out, "env.txt"), "tests_gpu": pytest_counts(_text(out, "tests.log")),
            "kernel_tests": pytest_counts(_text(out, "kernels.log")),
            "char6L_b64_step": step_times(load("fused_off.json"), load("fused_on.json")) or None, "train": train}


def markdown(r):
    md = ["# GPU session report", "", "```", (r["env"] or "env: not run").strip(), "```", "",
          f"- suite, pytest --device gpu: {r['tests_gpu'] or 'not run'}",
          f"- kernel tests, tests/test_cuda_kernels.py: {r['kernel_tests'] or 'not run'}", ""]
    step = r["char6L_b64_step"]
    if step:
        md += ["| char-6L, batch 64 | ms / step | / PyTorch eager |", "|---|---:|---:|"]
        for name, key in (("tinylm, fused off", "tinylm_fused_off"), ("tinylm, fused on", "tinylm_fused_on"),
                          ("PyTorch eager", "torch_eager")):
            if key + "_ms" in step:
                ratio = step.get(key + "_over_torch")
                md.append(f"| {name} | {step[key + '_ms']:.1f} | {'' if ratio is None else f'{ratio:.2f}x'} |")
        md.append("")
    else:
        md += ["- char-6L batch 64 step times: not run", ""]
    train = r["train"]
    md.append(f"- char-6L training: {train['log_rows']} log rows, the last: {train['last']}" if train
              else "- char-6L training: not run")
    return "\n".join(md) + "\n"


def main():
    out = Path(os.environ.get("OUT_DIR", "out/gpu-session"))
    run = Path(os.environ.get("RUN_DIR", "out/gpu-char6L"))
    r = report(out, run)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(r, indent=1) + "\n")
    (out / "report.md").write_text(markdown(r))
    print(markdown(r), end="")


if __name__ == "__main__":
    main()
