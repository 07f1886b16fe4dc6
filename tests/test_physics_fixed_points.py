"""Exact fixed-point counts against brute force, and the closed form of thesis eq. 3.2."""

import itertools
import math

import pytest
import torch
from scipy import stats

from mlcm_torch.physics import (
    annealed_entropy,
    count_fixed_points,
    expected_entropy,
    fixed_point_counts,
    fixed_point_entropy,
    random_couplings,
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def brute_force_count(j, j_d):
    """Slow obvious loop over all 2^N states."""
    n = len(j)
    count = 0
    for s in itertools.product((-1, 1), repeat=n):
        if all(s[i] * (sum(j[i][k] * s[k] for k in range(n)) + j_d * s[i]) > 0 for i in range(n)):
            count += 1
    return count


def gaussian(n, seed):
    g = torch.Generator().manual_seed(seed)
    j = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    j.fill_diagonal_(0)
    return j


@pytest.mark.parametrize("n", [1, 2, 3, 6, 9, 12])
@pytest.mark.parametrize("j_d", [-0.4, 0.0, 0.35, 1.1])
def test_count_matches_brute_force_gaussian(n, j_d):
    j = gaussian(n, seed=10 * n)
    assert count_fixed_points(j, j_d) == brute_force_count(j.tolist(), j_d)


@pytest.mark.parametrize("n", [4, 7, 10])
def test_count_exact_at_ties_for_integer_couplings(n):
    g = torch.Generator().manual_seed(n)
    b = (torch.randint(0, 2, (n, n), generator=g) * 2 - 1).to(torch.float64)
    b.fill_diagonal_(0)
    for j_d in range(0, 5):
        assert count_fixed_points(b, j_d) == brute_force_count(b.tolist(), j_d)


def test_batched_counts_match_single_counts_in_any_order():
    j, _ = random_couplings(9, n_networks=3, kind="gaussian", storage="float64",
                            generator=torch.Generator().manual_seed(1))
    j_d = [1.0, -0.2, 0.5, 0.0]
    counts = fixed_point_counts(j, j_d, batch=37)
    for m in range(3):
        for k, v in enumerate(j_d):
            assert counts[m, k] == brute_force_count(j[m].tolist(), v)


def test_annealed_entropy_closed_form():
    assert annealed_entropy(0.0) == 0.0
    for x in (-1.0, 0.3, 1.0, 2.5):
        assert annealed_entropy(x) == pytest.approx(math.log(2 * stats.norm.cdf(x)), rel=1e-12, abs=1e-12)
    assert annealed_entropy(8.0) == pytest.approx(math.log(2))


def test_expected_entropy_tends_to_closed_form():
    for kind in ("gaussian", "binary"):
        assert expected_entropy(400_000, 0.7, kind) == pytest.approx(annealed_entropy(0.7), abs=2e-3)
    assert expected_entropy(10, 0.0, "gaussian") == pytest.approx(0.0)


def test_mean_count_agrees_with_exact_expectation():
    n, j_d, networks = 8, 0.5, 300
    j, _ = random_couplings(n, n_networks=networks, kind="gaussian", storage="float64",
                            generator=torch.Generator().manual_seed(3))
    counts = fixed_point_counts(j, [j_d])[:, 0].to(torch.float64)
    expected = math.exp(n * expected_entropy(n, j_d, "gaussian"))
    sem = float(counts.std()) / math.sqrt(networks)
    assert abs(float(counts.mean()) - expected) < 4 * sem


def test_entropy_experiment_reports_all_curves():
    r = fixed_point_entropy([6, 8], [0.0, 1.0], n_networks=5, seed=1)
    assert r["closed_form"] == [annealed_entropy(0.0), annealed_entropy(1.0)]
    assert [row["n"] for row in r["sizes"]] == [6, 8]
    assert len(r["sizes"][1]["entropy_expected_finite_n"]) == 2


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="N <= 24"):
        count_fixed_points(torch.zeros(25, 25), 0.5)
    with pytest.raises(ValueError, match="zero diagonal"):
        count_fixed_points(torch.eye(4), 0.5)
    with pytest.raises(ValueError, match="finite"):
        count_fixed_points(torch.zeros(4, 4), float("nan"))
    with pytest.raises(ValueError, match="shape"):
        count_fixed_points(torch.zeros(3, 4), 0.5)
    with pytest.raises(ValueError, match="one \\(N, N\\) matrix"):
        count_fixed_points(torch.zeros(2, 4, 4), 0.5)
    with pytest.raises(ValueError, match="finite"):
        annealed_entropy(float("inf"))
    with pytest.raises(ValueError, match="kind"):
        expected_entropy(10, 0.5, "uniform")
