"""The benchmark scripts run and print the promised JSON fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_throughput_benchmark_prints_json_lines():
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_throughput.py", "--config",
         "lightning_configs/entangled_mnist.yaml", "--device", "cpu", "--batch-size", "4", "8",
         "--steps", "1", "--repeats", "1"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["batch_size"] for line in lines] == [4, 8]
    for line in lines:
        assert line["device"] == "cpu" and line["hidden"] == 1600 and line["num_layers"] == 1
        for key in ("train_samples_per_s", "relax_samples_per_s", "infer_samples_per_s",
                    "peak_memory_mib"):
            assert line[key] > 0, key
