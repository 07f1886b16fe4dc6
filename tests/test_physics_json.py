"""The physics command's JSON record: list options are stored flat, as the experiment sees them."""

from __future__ import annotations

import json

from mlcm_torch.physics.cli import main


def test_list_options_are_stored_flat_in_the_json(tmp_path):
    argv = ["fixed-points", "--n", "4", "5", "--networks", "2", "--j-d", "0.5", "1:1.5:0.5", "--out", str(tmp_path),
            "--no-progress"]
    record = main(argv)
    stored = json.loads((tmp_path / "fixed-points.json").read_text())
    assert stored["parameters"]["j_d"] == [0.5, 1.0, 1.5]  # not [[0.5], [1.0, 1.5]]
    assert stored["parameters"]["n"] == [4, 5]
    assert stored["parameters"]["out"] == str(tmp_path)
    assert record["parameters"] == stored["parameters"]
