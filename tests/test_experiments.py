"""The learning-experiment sweeps (mlcm_torch.experiments): every figure at the smoke preset,
outputs and per-run records, resuming, --set overrides and bad input."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import pytest

from mlcm_torch.experiments import ExperimentError, apply_overrides, parse_set, plan, run_figure, run_id
from mlcm_torch.experiments.cli import main
from mlcm_torch.experiments.figures import FIGURES, get_figure
from mlcm_torch.experiments.stats import mean_ci

NAMES = list(FIGURES)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict, dict]:
    """Every figure at smoke, inline (jobs=0), into one folder; with the seconds each took."""
    out = tmp_path_factory.mktemp("experiments")
    reports, seconds = {}, {}
    for name in NAMES:
        start = time.perf_counter()
        reports[name] = run_figure(name, "smoke", out, jobs=0, progress=False, log=lambda *a: None)
        seconds[name] = time.perf_counter() - start
    print("smoke seconds per figure:", {k: round(v, 1) for k, v in seconds.items()})
    return out, reports, seconds


@pytest.mark.parametrize("name", NAMES)
def test_figure_outputs(smoke, name):
    out, reports, _ = smoke
    report = json.loads((out / f"{name}.json").read_text())
    assert report["figure"] == name and report["preset"] == "smoke"
    assert report["complete"], report["failed"]
    assert report["runs"] and len(report["runs"]) == report["runs_planned"]
    for key in ("seeds", "epochs", "N", "train", "test", "note"):
        assert key in report["scale"]
    table = report["summary"]["table"]
    assert table["rows"] and all(len(row) == len(table["columns"]) for row in table["rows"])
    png = (out / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (out / f"{name}.md").read_text()
    assert md.startswith(f"# {name}") and "| --- |" in md and "python -m mlcm_torch.experiments" in md
    assert "Published:" in md


@pytest.mark.parametrize("name", NAMES)
def test_run_records(smoke, name):
    out, _, _ = smoke
    report = json.loads((out / f"{name}.json").read_text())
    for run in report["runs"]:
        path = out / "runs" / f"{run['id']}.json"
        assert path.exists()
        for key in ("id", "figure", "seed", "label", "params", "overrides", "config", "wall_seconds", "machine"):
            assert key in run, key
        assert run["machine"]["torch"] and run["machine"]["cpus"]
        if run["config"]["run"].get("task") == "physics":
            assert run["physics"]["j_d_star"] > 0
            continue
        epochs = run["epochs"]
        assert [e["epoch"] for e in epochs] == list(range(1, run["config"]["trainer"]["max_epochs"] + 1))
        for record in epochs:
            assert 0.0 <= record["train_acc"] <= 1.0
            assert "train_acc_online" in record and record["seconds"] >= 0
            if "test_acc" in record:
                assert 0.0 <= record["test_acc"] <= 1.0
            if run["config"].get("network"):
                split = "test" if "test_acc" in record else "train"
                layers = run["config"]["network"]["init_args"].get("num_layers") or \
                    len(run["config"]["network"]["init_args"]["layers"])
                assert len(record[f"{split}_activity"]) == layers
                assert 0.0 <= record[f"{split}_not_converged"] <= 1.0
                assert record[f"{split}_sweeps"] >= 1
        if run["config"]["run"].get("probe"):
            probe = run["probe"]
            assert len(probe["test_acc"]) == run["config"]["network"]["init_args"]["num_layers"] + 1


def test_figure_summaries(smoke):
    _, reports, _ = smoke
    coupling = reports["paper-self-coupling"]["summary"]
    j_d = [p["x"] for p in coupling["arms"]["mlcm"]]
    assert len(j_d) >= 8 and min(j_d) == 0.0 and max(j_d) == 1.5
    assert coupling["physics"]["j_d_star"] > 0 and coupling["physics"]["n"] == 48
    hetero = reports["paper-hetero-capacity"]["summary"]["groups"]
    assert sorted(int(k) for k in hetero) == [1, 2, 3, 4]
    assert all(g["alpha_max"]["n"] == 2 for g in hetero.values())
    depth = reports["paper-depth"]["summary"]["groups"]
    assert [len(g["probe"]) for g in depth.values()] == [2, 3, 4]  # input + each layer
    thesis = reports["thesis-mnist"]["summary"]["groups"]
    assert set(thesis) == {f"{arm}/{data}" for arm in ("mlcm", "mlcm-converging", "sln")
                           for data in ("binary", "projected")}
    assert all(len(g["test_not_converged"]["mean"]) == 2 for g in thesis.values())
    width = reports["paper-width"]["summary"]["arms"]
    assert set(width) == {"mlcm", "binary-mlp"}
    wta = reports["thesis-wta"]["summary"]["groups"]
    assert all(len(g["activity"]) == 5 for g in wta.values())


def test_smoke_time(smoke):
    """Each figure's smoke preset is a quick pipeline check (generous bound: shared CI machines)."""
    _, _, seconds = smoke
    assert max(seconds.values()) < 120, seconds


def test_restart_skips_finished_runs(smoke, capsys):
    out, reports, _ = smoke
    name = "thesis-wta"
    runs = sorted((out / "runs").glob(f"{name}-*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    assert main([name, "--preset", "smoke", "--out", str(out), "--jobs", "0", "--no-progress"]) == 0
    assert f"{len(runs)} already finished" in capsys.readouterr().out
    assert sorted((out / "runs").glob(f"{name}-*.json")) == runs
    assert {p: p.stat().st_mtime_ns for p in runs} == stamps
    again = json.loads((out / f"{name}.json").read_text())
    assert again["summary"] == json.loads(json.dumps(reports[name]["summary"]))


def test_more_seeds_reuse_finished_runs(smoke):
    out, _, _ = smoke
    figure = get_figure("paper-width")
    one = {spec["id"] for spec in plan(figure, "smoke", out, seeds=1)}
    two = {spec["id"] for spec in plan(figure, "smoke", out, seeds=2)}
    assert one < two and len(two) == 2 * len(one)


def test_set_reaches_run_config(tmp_path):
    code = main(["paper-width", "--preset", "smoke", "--out", str(tmp_path), "--jobs", "0", "--no-progress",
                 "--set", "network.init_args.max_sweeps=3", "--set", "run.train_eval_size=50"])
    assert code == 0
    report = json.loads((tmp_path / "paper-width.json").read_text())
    assert report["sets"] == {"network.init_args.max_sweeps": 3, "run.train_eval_size": 50}
    for run in report["runs"]:
        assert run["config"]["run"]["train_eval_size"] == 50
        assert run["epochs"][-1]["train_n"] == 50
        if run["params"]["arm"] == "mlcm":
            assert run["config"]["network"]["init_args"]["max_sweeps"] == 3
            assert run["overrides"]["network.init_args.max_sweeps"] == 3
        else:  # the MLP has no network: the override does not apply to it
            assert run["config"]["network"] is None
            assert "network.init_args.max_sweeps" not in run["overrides"]
    # a --set changes the run ids of the runs it reaches
    plain = {spec["id"] for spec in plan(get_figure("paper-width"), "smoke", tmp_path)}
    assert not plain & {run["id"] for run in report["runs"] if run["params"]["arm"] == "mlcm"}


def test_run_module_reruns_a_spec(smoke):
    from mlcm_torch.experiments import run as run_module

    out, reports, _ = smoke
    record = reports["paper-hetero-capacity"]["runs"][0]
    spec = out / "specs" / f"{record['id']}.json"
    target = out / "runs" / f"{record['id']}.json"
    target.unlink()
    assert run_module.main([str(spec)]) == 0
    rerun = json.loads(target.read_text())
    def numbers(epochs):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]

    assert numbers(rerun["epochs"]) == numbers(record["epochs"])  # seeded: the same numbers again


def _error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bad_input_short_errors(tmp_path, capsys):
    out = str(tmp_path)
    err = _error(capsys, ["no-such-figure", "--preset", "smoke", "--out", out])
    assert "unknown figure 'no-such-figure'" in err and "thesis-mnist" in err
    err = _error(capsys, ["thesis-mnist", "--preset", "huge", "--out", out])
    assert "invalid choice: 'huge'" in err
    for argv, expected in (
        (["--set", "network.init_args.hiden=3"], "--set network.init_args.hiden: no run of figure"),
        (["--set", "nonsense"], "expected key=value"),
        (["--set", "trainer.max_epochs=[1"], "not valid YAML"),
        (["--seeds", "0"], "--seeds 0"),
        (["--jobs", "-1"], "--jobs -1"),
    ):
        code = main(["paper-width", "--preset", "smoke", "--out", out, "--no-progress", *argv])
        err = capsys.readouterr().err
        assert code == 2 and expected in err, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("runs/*.json"))


def test_cluster_needs_submitit(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    code = main(["paper-width", "--preset", "smoke", "--out", str(tmp_path), "--cluster", "slurm", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'mlcm_torch[cluster]'" in err


def test_synthetic_fallback_without_images(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCM_DATA_DIR", str(tmp_path / "empty"))
    specs = plan(get_figure("thesis-mnist"), "smoke", tmp_path)
    assert all(spec["config"]["data"]["class_path"].endswith("SyntheticDataModule") for spec in specs)
    widths = {spec["params"]["encoding"]: spec["config"]["data"]["init_args"]["in_features"] for spec in specs}
    assert widths == {"binary": 48, "projected": 24}


@pytest.mark.slow
def test_worker_processes(tmp_path):
    """--jobs 2: runs in two spawned worker processes give the same records as inline runs."""
    args = ["paper-hetero-capacity", "--preset", "smoke", "--seeds", "1", "--no-progress",
            "--set", "trainer.max_epochs=1"]
    assert main([*args, "--out", str(tmp_path / "pool"), "--jobs", "2"]) == 0
    assert main([*args, "--out", str(tmp_path / "inline"), "--jobs", "0"]) == 0
    pool = json.loads((tmp_path / "pool" / "paper-hetero-capacity.json").read_text())
    inline = json.loads((tmp_path / "inline" / "paper-hetero-capacity.json").read_text())
    assert pool["summary"] == inline["summary"]
    assert {r["id"] for r in pool["runs"]} == {r["id"] for r in inline["runs"]}
    assert all(r["machine"]["threads"] == 1 for r in pool["runs"])  # smoke runs use one thread


def test_overrides_and_ids():
    config = {"network": {"class_path": "mlcm_torch.Network",
                          "init_args": {"layers": [{"class_path": "mlcm_torch.RecurrentLayer",
                                                    "init_args": {"size": 10}}]}},
              "trainer": {"max_epochs": 1}, "run": {}}
    out = apply_overrides(config, {"network.init_args.layers.0.init_args.size": 20, "trainer.max_epochs": 3,
                                   "network.init_args.layers.0.init_args.j_d": 0.5, "run.probe": True})
    assert out["network"]["init_args"]["layers"][0]["init_args"] == {"size": 20, "j_d": 0.5}
    assert out["trainer"]["max_epochs"] == 3 and out["run"]["probe"] is True
    assert config["network"]["init_args"]["layers"][0]["init_args"] == {"size": 10}
    for bad in ("network.init_args.layers.1.init_args.size", "network.init_args.layers.0.init_args.nope",
                "trainer.bogus", "run.bogus", "network..x"):
        with pytest.raises(ExperimentError):
            apply_overrides(config, {bad: 1})
    assert parse_set("a.b=[4, 4]") == ("a.b", [4, 4])
    assert parse_set("a.b=0.5") == ("a.b", 0.5) and parse_set("a.b=null") == ("a.b", None)
    assert parse_set("a.b=dense") == ("a.b", "dense")
    assert run_id("f", {"a": 1}, 0, "smoke") == run_id("f", {"a": 1}, 0, "smoke")
    assert run_id("f", {"a": 1}, 0, "smoke") != run_id("f", {"a": 1}, 1, "smoke")
    assert run_id("f", {"a": 1}, 0, "smoke") != run_id("f", {"a": 1}, 0, "cpu")


def test_mean_ci():
    stat = mean_ci([1.0, 2.0, 3.0])
    assert stat["mean"] == 2.0 and stat["n"] == 3
    assert math.isclose(stat["ci"], 4.302652729911275 / math.sqrt(3), rel_tol=1e-9)
    assert mean_ci([0.5]) == {"mean": 0.5, "ci": None, "n": 1}
    assert mean_ci([None]) == {"mean": None, "ci": None, "n": 0}


@pytest.mark.parametrize("name", NAMES)
def test_collect_only_runs_nothing(tmp_path, name):
    report = run_figure(name, "smoke", tmp_path, progress=False, log=lambda *a: None, collect_only=True)
    assert not report["complete"] and report["runs_finished"] == 0
    assert not (tmp_path / "runs").exists()
    assert (tmp_path / f"{name}.png").exists() and "Incomplete" in (tmp_path / f"{name}.md").read_text()


def test_every_preset_builds(tmp_path):
    """The networks of the cpu and gpu presets (not run here) build, with the data's input width."""
    import copy

    from mlcm_torch.experiments.figures.common import data_width
    from mlcm_torch.module.config import from_config
    from mlcm_torch.module.network import Network

    seen = set()
    for figure in FIGURES.values():
        for preset in ("cpu", "gpu"):
            for spec in plan(figure, preset, tmp_path, seeds=1):
                config = spec["config"]
                if not config.get("network"):
                    continue
                key = json.dumps(config["network"], sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                network = from_config(copy.deepcopy(config["network"]), Network)
                data = config["data"]
                width = data["init_args"]["in_features"] if data["class_path"].endswith("SyntheticDataModule") \
                    else data_width(data)
                assert network.in_features == width, (figure.name, preset, spec["label"])
                del network
    assert len(seen) > 50
