"""The benchmark scripts run and print the promised JSON fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path, trainer: str, data: str, model: str = "") -> Path:
    """A one-layer MLCM on synthetic data; ``trainer``/``data``/``model``: extra YAML under each
    key (``model``: lines of the classifier's init_args)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "seed_everything: 0\n"
        f"trainer:\n  accelerator: cpu\n{trainer}"
        "model:\n  class_path: mlcm_torch.training.MLCMClassifier\n"
        f"  init_args:\n{model}    network:\n      class_path: mlcm_torch.MLCM\n"
        "      init_args: {in_features: 32, hidden: 64, num_layers: 1, num_classes: 4, j_d: 0.5,\n"
        "                  lambda_in: 3.0, lambda_out: 2.0, lr: 0.05, max_sweeps: 5}\n"
        "data:\n  class_path: mlcm_torch.data.SyntheticDataModule\n"
        "  init_args: {num_classes: 4, in_features: 32, flip_prob: 0.1, train_size: 256,\n"
        f"              {data}}}\n"
    )
    return config


def test_throughput_benchmark_prints_json_lines():
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_throughput.py", "--config",
         "lightning_configs/entangled_mnist.yaml", "--device", "cpu", "--batch-size", "4", "8",
         "--steps", "1", "--repeats", "1", "--backend", "dense", "event"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["batch_size"], line["backend"]) for line in lines] == [
        (4, "dense"), (4, "event"), (8, "dense"), (8, "event")]
    for line in lines:
        assert line["device"] == "cpu" and line["sizes"] == [1600]
        for key in ("train_samples_per_s", "relax_samples_per_s", "infer_samples_per_s",
                    "peak_memory_mib"):
            assert line[key] > 0, key


def test_accuracy_benchmark_writes_test_accuracy_per_epoch(tmp_path):
    """Trains a small config on synthetic data with the config's checkpoint callback and
    logger switched off by the script, and no validation split (``--val-size 0``)."""
    config = tiny_config(
        tmp_path,
        "  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: {monitor: val/acc, mode: max}\n",
        "test_size: 128",
    )
    out = tmp_path / "acc.json"
    subprocess.run(
        [sys.executable, "benchmarks/train_accuracy.py", "--config", str(config), "--epochs", "2",
         "--val-size", "0", "--out", str(out), "--", f"--trainer.default_root_dir={tmp_path}"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    )
    record = json.loads(out.read_text())
    assert record["val_size"] == 0 and record["config"] == str(config)
    assert [epoch["epoch"] for epoch in record["epochs"]] == [1, 2]
    assert record["epochs"][-1]["test_acc"] > 0.5, record["epochs"]
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("loader, micro", [(16, None), (32, 16)])
def test_lightning_overhead_is_measured_against_the_same_batches(tmp_path, loader, micro):
    """With --lightning the bare engine step runs on the loader's batches (synthetic data here;
    in the model's micro-batches, if it has them) and the overhead is the ratio of the two
    per-step times."""
    model = f"    micro_batch_size: {micro}\n" if micro else ""
    config = tiny_config(tmp_path, "  max_epochs: 50\n", f"test_size: 64, batch_size: {loader}", model)
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_throughput.py", "--config", str(config), "--device", "cpu",
         "--batch-size", "16", "--steps", "1", "--repeats", "1", "--backend", "dense", "--lightning", "2", "32",
         "--lightning-repeats", "1"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    (line,) = [json.loads(text) for text in out.splitlines()]
    if line["lightning_fit_samples_per_s"] is None:  # a loaded machine: the two lengths were not resolved
        assert "unresolved" in line["lightning_note"]
    assert line["lightning_loop_samples_per_s"] > 0 and line["bare_real_batches_samples_per_s"] > 0
    assert line["lightning_fit_batch_size"] == loader and line["micro_batches_per_step"] == loader // (micro or loader)
    expected = line["bare_real_batches_samples_per_s"] / line["lightning_loop_samples_per_s"] - 1
    assert abs(line["lightning_overhead"] - expected) < 0.05 * (1 + abs(expected))
    assert len(line["lightning_overhead_same_steps_runs"]) == 1
    assert line["lightning_overhead_same_steps"] == line["lightning_overhead_same_steps_runs"][0] > 0


def test_physics_checkout_comparison_times_and_records_a_workload(tmp_path, monkeypatch, capsys):
    """compare_checkouts: one tiny workload timed in worker processes for two roots (here both
    this checkout), the speed-up and same-result columns printed and appended as JSON lines."""
    sys.path.insert(0, str(ROOT / "benchmarks" / "physics"))
    try:
        import compare_checkouts
    finally:
        sys.path.pop(0)
    out = tmp_path / "physics.jsonl"
    cases = {"sync int8 N=60 M=2 T=5": ["dynamics", "sync", "0.5", "5", "60", "2"]}
    compare_checkouts.compare_timings(str(ROOT), str(ROOT), 1, cases, str(out))
    printed = capsys.readouterr().out
    assert "sync int8 N=60 M=2 T=5" in printed and "yes" in printed
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["workload"] == "sync int8 N=60 M=2 T=5" and row["same_result"] is True
    assert row["old_s"] > 0 and row["new_s"] > 0 and row["speedup"] == row["old_s"] / row["new_s"]
    assert row["machine"]["threads"] == 1 and row["reps"] == 1


def test_train_step_cpu_times_the_bare_step_and_inference(tmp_path):
    """train_step_cpu.py: one JSON line with the step's and inference's CPU-time rates, the
    loader's batches split into the model's micro-batches."""
    config = tiny_config(tmp_path, "  max_epochs: 1\n", "test_size: 64, val_size: 32, batch_size: 32",
                         "    micro_batch_size: 8\n")
    out = subprocess.run(
        [sys.executable, "benchmarks/train_step_cpu.py", "--config", str(config), "--warmup", "2", "--steps", "10",
         "--infer-batches", "1"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    (line,) = [json.loads(text) for text in out.splitlines()]
    assert line["micro_batch_size"] == 8 and line["train_steps"] == 10 and line["threads"] == 1
    assert line["train_ms_per_step"] > 0 and line["infer_samples_per_cpu_s"] > 0
    assert abs(line["train_samples_per_cpu_s"] - 8e3 / line["train_ms_per_step"]) < 0.01 * line["train_samples_per_cpu_s"]
