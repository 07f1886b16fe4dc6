"""benchmarks/compare_peers.py: a clear skip without the peers, JSON lines for mlcm_torch alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/compare_peers.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_missing_darnax_checkout_skips_with_a_clear_message():
    result = run("--darnax", "/nonexistent", "--authors", "/nonexistent-authors")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "nothing measured" in result.stdout
    assert "darnax checkout not found at /nonexistent" in result.stdout
    assert "git clone https://github.com/Willinki/darnax" in result.stdout
    assert "authors' checkout not found at /nonexistent-authors" in result.stdout
    assert "--skip-peers" in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("{")]


def test_skip_peers_times_mlcm_torch_alone():
    result = run("--skip-peers", "--threads", "1", "--steps", "1", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["system"] for line in lines] == ["mlcm_torch", "mlcm_torch", "ratios"]
    assert [line["config"] for line in lines[:2]] == [
        "lightning_configs/mnist_sparse.yaml", "lightning_configs/mnist.yaml"]
    for line in lines[:2]:
        assert line["batch"] == 16 and line["samples_per_s"] > 0 and line["threads"] == 1
        assert line["device"] == "cpu" and line["backend"] == "auto"
        assert line["resolved_backend"] in ("dense", "event")
        assert line["versions"]["torch"] and line["versions"]["mlcm_torch"]
    assert lines[-1]["threads"] == 1
    assert not any(key.startswith("mlcm_torch/") for key in lines[-1])  # no peer, no ratio
