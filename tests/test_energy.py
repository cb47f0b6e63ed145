"""Energy accounting: counts times prices, summed per operation kind."""

from __future__ import annotations

import pytest

from nmbrl_brian.energy import CMOS_45NM_FP32, LOIHI, OperationCounts


def test_loihi_prices_match_the_paper():
    counts = OperationCounts(synaptic_events=1000, neuron_updates=10, spikes=5)
    expected = (1000 * 23.6 + 10 * 52.0 + 5 * 1.7) * 1e-12
    assert LOIHI.joules(counts) == pytest.approx(expected, rel=1e-12), "Loihi energy is not counts x Table 1"


def test_breakdown_is_tidy_and_sums_to_total():
    counts = OperationCounts(spikes=3, synaptic_events=7, macs=11)
    table = CMOS_45NM_FP32.breakdown(counts)
    assert set(table.columns) == {"energy_model", "operation", "count", "energy_j"}
    assert table["energy_j"].sum() == pytest.approx(CMOS_45NM_FP32.joules(counts))
    assert table.set_index("operation").loc["macs", "energy_j"] == pytest.approx(11 * 4.6e-12)


def test_counts_add():
    total = OperationCounts(spikes=1, macs=2) + OperationCounts(spikes=3, weight_updates=4)
    assert total == OperationCounts(spikes=4, macs=2, weight_updates=4), f"bad sum {total}"
