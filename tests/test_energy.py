"""Energy accounting: profiles read from data files, counts per phase times prices, the energy report."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from nmbrl_brian.cli import main
from nmbrl_brian.config import load_config
from nmbrl_brian.energy import (
    CMOS_45NM_FP32,
    LOIHI,
    OPERATIONS,
    PRICE_COLUMNS,
    SHIPPED_PROFILES,
    OperationCounts,
    counts_from_table,
    load_profiles,
    price,
    return_vs_energy,
    training_joules,
)
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.plotting import plot_energy_breakdown, plot_return_vs_energy
from nmbrl_brian.training.callbacks import EnergyReport
from nmbrl_brian.training.run import run_training

ROOT = Path(__file__).resolve().parents[1]
DENSE = ROOT / "nmbrl_brian" / "configs" / "cartpole_dense.toml"
TINY = ["total_env_steps=600", "eval_every=300", "eval_episodes=2", "checkpoint_every=300"]

#: A user's profile file: binary-exact prices, so hand-computed joules are exact.
TOY = """
[costs.toy]
reference = "made up for the tests"
read = { pj = 0.5, source = "test" }
op = { pj = 2.0, source = "test" }
[profiles.toy]
title = "a made-up chip"
operations.spikes = { uses = { toy.read = 1 } }
operations.synaptic_events = { uses = { toy.op = 1, toy.read = 1 } }
operations.neuron_updates = { uses = { toy.op = 3 } }
operations.synapse_updates = { uses = {} }
operations.weight_updates = { uses = { toy.read = 2 } }
operations.macs = { uses = { toy.op = 1, horowitz2014.fp32_add = 0 }, note = "a shipped cost may be used" }
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_loihi_prices_match_the_paper():
    counts = OperationCounts(synaptic_events=1000, neuron_updates=10, spikes=5)
    expected = (1000 * 23.6 + 10 * 52.0 + 5 * 1.7) * 1e-12
    assert LOIHI.joules(counts) == pytest.approx(expected, rel=1e-12), "Loihi energy is not counts x Table 2"


def test_shipped_profiles_price_every_operation_from_sourced_costs():
    assert set(SHIPPED_PROFILES) == {
        "loihi",
        "spinnaker2",
        "spinnaker1",
        "cmos45_fp32",
        "cmos45_int",
        "cmos45_fp32_sram",
        "cmos45_fp32_dram",
    }, f"shipped profiles: {list(SHIPPED_PROFILES)}"
    for profile in SHIPPED_PROFILES.values():
        assert set(profile.prices_pj) == set(OPERATIONS), f"{profile.name} does not price every operation"
        assert profile.title, f"{profile.name} has no title"
    mac = 3.7 + 0.9  # Horowitz 2014: fp32 multiply + add
    assert CMOS_45NM_FP32.prices_pj["macs"] == pytest.approx(mac)
    assert SHIPPED_PROFILES["cmos45_fp32_sram"].prices_pj["macs"] == pytest.approx(mac + 10.0), (
        "MAC + 8 KB SRAM read"
    )
    fixed = SHIPPED_PROFILES["cmos45_int"].prices_pj  # Horowitz 2014: integer multiply and add
    assert fixed["synaptic_events"] == pytest.approx(0.2 + 0.1), "8-bit multiply + 32-bit add"
    assert fixed["neuron_updates"] == pytest.approx(3 * (3.1 + 0.1)), "three 32-bit MACs"
    assert fixed["weight_updates"] == pytest.approx(3.1 + 0.03), "32-bit multiply + 8-bit add"
    assert all(fixed[op] < CMOS_45NM_FP32.prices_pj[op] for op in OPERATIONS if CMOS_45NM_FP32.prices_pj[op])
    assert SHIPPED_PROFILES["cmos45_fp32_dram"].prices_pj["macs"] == pytest.approx(mac + 1300.0), (
        "MAC + DRAM read"
    )
    spinnaker2 = SHIPPED_PROFILES["spinnaker2"].prices_pj
    assert (spinnaker2["synaptic_events"], spinnaker2["neuron_updates"]) == (450.0, 2190.0)
    assert LOIHI.uses["synaptic_events"] == {"davies2018.synaptic_spike_op": 1.0}, (
        "uses names the published cost"
    )


def test_pricing_per_phase_equals_hand_computed_joules_exactly(tmp_path):
    profiles = load_profiles([_write(tmp_path / "toy.toml", TOY)])
    counts = {
        "real": OperationCounts(spikes=4, synaptic_events=1000, neuron_updates=10, weight_updates=8, macs=3),
        "dream": OperationCounts(synaptic_events=2, synapse_updates=99),
        "evaluation": OperationCounts(neuron_updates=1),
    }
    table = price(counts, [profiles["toy"]])
    assert list(table.columns) == list(PRICE_COLUMNS), f"columns: {list(table.columns)}"
    assert len(table) == 3 * len(OPERATIONS), "one row per phase and operation kind"
    got = {(r.phase, r.operation): r.joules for r in table.itertuples()}
    expected = {
        ("real", "spikes"): 2e-12,  # 4 x 0.5 pJ
        ("real", "synaptic_events"): 2.5e-9,  # 1000 x (2 + 0.5) pJ
        ("real", "neuron_updates"): 6e-11,  # 10 x 3 x 2 pJ
        ("real", "weight_updates"): 8e-12,  # 8 x 2 x 0.5 pJ
        ("real", "macs"): 6e-12,  # 3 x 2 pJ
        ("dream", "synaptic_events"): 5e-12,
        ("dream", "synapse_updates"): 0.0,  # priced at nothing
        ("evaluation", "neuron_updates"): 6e-12,
    }
    for key, joules in got.items():
        assert joules == expected.get(key, 0.0), f"{key}: {joules!r} J, expected {expected.get(key, 0.0)!r} J"
    assert table.set_index(["phase", "operation"]).loc[("real", "synaptic_events"), "count"] == 1000
    spent = training_joules(table)
    assert spent["toy"] == pytest.approx(2e-12 + 2.5e-9 + 6e-11 + 8e-12 + 6e-12 + 5e-12, rel=1e-15), (
        "training energy sums every phase but evaluation"
    )
    assert counts_from_table(price(counts)) == counts, "the counts behind a priced table come back"


def test_user_profile_file_is_read_and_priced_in_a_run(tmp_path):
    toy = _write(tmp_path / "toy.toml", TOY)
    config = load_config(DENSE, [*TINY, f'energy_profiles=["{toy}"]'])
    run_dir = run_training(config, out=tmp_path / "runs")
    energy = pd.read_csv(run_dir / "energy.csv")
    assert set(energy["profile"]) == {*SHIPPED_PROFILES, "toy"}, f"profiles: {set(energy['profile'])}"
    assert list(energy.columns) == [*PRICE_COLUMNS, "env_steps", "seed"], f"columns: {list(energy.columns)}"
    toy_rows = energy[energy.profile == "toy"].set_index("operation")
    macs = int(toy_rows.loc["macs", "count"])
    assert macs > 0, "the dense agent counts its multiply-accumulates"
    assert toy_rows.loc["macs", "joules"] == macs * 2.0 / 1e12, "a MAC costs 2 pJ in the user's profile"
    curve = pd.read_csv(run_dir / "energy_curve.csv")
    toy_curve = curve[curve.profile == "toy"]
    assert toy_curve["env_steps"].tolist() == [0, 300, 600], f"one row per evaluation: {toy_curve}"
    assert toy_curve["joules"].is_monotonic_increasing, "energy spent only grows"
    assert toy_curve["joules"].iloc[-1] == pytest.approx(toy_rows["joules"].sum()), (
        "the curve ends at the total"
    )


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[profiles.x", "valid TOML"),
        ("[profile.x]\ntitle = 'x'", "profile: expected one of costs, profiles"),
        ("[costs.a]\nb = { pj = -1.0, source = 's' }", "costs.a.b.pj: expected a finite number >= 0"),
        ("[costs.a]\nb = { pj = 1.0 }", "costs.a.b.source: expected a non-empty string"),
        (
            TOY.replace("operations.macs", "# "),
            "profiles.toy.operations: expected a price for every operation",
        ),
        (
            TOY.replace("toy.op = 3", "toy.nope = 3"),
            "operations.neuron_updates.uses.toy.nope: expected a cost",
        ),
        (
            TOY.replace("[profiles.toy]", "[profiles.loihi]"),
            "profiles.loihi: expected a profile name not defined",
        ),
        (TOY + "[costs.horowitz2014]\nfp32_mult = { pj = 1.0, source = 's' }", "a cost name not defined yet"),
        (
            TOY.replace("[profiles.toy]", "[profiles.my-chip]"),
            "profiles.my-chip: expected a profile name of letters",
        ),
        (TOY.replace("title =", "titel ="), "profiles.toy.titel: expected one of title, operations"),
    ],
)
def test_malformed_profile_file_is_a_one_line_error(tmp_path, capsys, text, fragment):
    path = _write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_profiles([path])
    message = str(info.value)
    assert fragment in message and str(path) in message, f"message: {message}"
    assert "\n" not in message, "errors are one line"
    out = tmp_path / "results"
    code = main(["run", "--config", str(DENSE), "--set", f'energy_profiles=["{path}"]', "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("nmbrl: error:"), f"exit {code}, stderr {err}"
    assert not out.exists(), "a bad profile file must not create a results folder"


def test_missing_profile_file_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="energy_profiles: expected an existing TOML file"):
        load_config(DENSE, [f'energy_profiles=["{tmp_path / "none.toml"}"]'])


class _Agent:
    """Counts per phase, like the spiking agents; one trace counter."""

    def __init__(self):
        self.by_phase = {
            "real": OperationCounts(spikes=10, synaptic_events=100),
            "evaluation": OperationCounts(),
        }

    def operation_counts_by_phase(self):
        return self.by_phase

    def operation_counts(self):  # pragma: no cover - the report prefers the phases
        raise AssertionError("operation_counts_by_phase() should be used when the agent has it")

    def trace_update_counts(self):
        return {"performed": 3, "skipped": 1, "total": 4}


def test_energy_report_prices_each_phase_and_keeps_a_curve(tmp_path):
    agent = _Agent()
    trainer = SimpleNamespace(agent=agent, config=SimpleNamespace(seed=7, energy_profiles=()), env_steps=0)
    report = EnergyReport(tmp_path)
    report.on_training_start(trainer)
    report.on_evaluation(trainer, {"policy": "current"})
    trainer.env_steps = 50
    agent.by_phase = {
        "real": OperationCounts(spikes=20, synaptic_events=300),
        "evaluation": OperationCounts(spikes=5),
    }
    report.on_evaluation(trainer, {"policy": "current"})
    report.on_evaluation(trainer, {"policy": "kept"})  # the kept policy's row adds no energy point
    report.on_training_end(trainer)
    energy = pd.read_csv(tmp_path / "energy.csv")
    assert len(energy) == 2 * len(SHIPPED_PROFILES) * len(OPERATIONS), "phases x profiles x operations"
    assert (energy["env_steps"] == 50).all() and (energy["seed"] == 7).all()
    loihi = energy[(energy.profile == "loihi") & (energy.phase == "real")].set_index("operation")["joules"]
    assert loihi["synaptic_events"] == pytest.approx(300 * 23.6e-12) and loihi["spikes"] == pytest.approx(
        20 * 1.7e-12
    )
    curve = pd.read_csv(tmp_path / "energy_curve.csv")
    assert sorted(set(curve["env_steps"])) == [0, 50], f"curve steps: {curve['env_steps'].tolist()}"
    traces = pd.read_csv(tmp_path / "trace_updates.csv").iloc[0]
    assert traces["fraction_skipped"] == 0.25 and traces["seed"] == 7
    # A resumed run keeps the curve up to its checkpoint.
    trainer.env_steps = 0
    resumed = EnergyReport(tmp_path)
    resumed.on_training_start(trainer)
    resumed.on_evaluation(trainer, {"policy": "current"})
    assert set(pd.read_csv(tmp_path / "energy_curve.csv")["env_steps"]) == {0}, "rows after the checkpoint go"


def test_return_vs_energy_pairs_each_evaluation_with_training_energy():
    metrics = pd.DataFrame(
        {"env_steps": [0, 10, 10], "return_mean": [9.0, 500.0, 480.0], "return_std": [0.0] * 3},
    ).assign(policy=["current", "current", "kept"])
    curve = pd.DataFrame(
        {
            "env_steps": [0, 10, 10, 10],
            "phase": ["evaluation", "real", "dream", "evaluation"],
            "profile": ["p"] * 4,
            "joules": [5.0, 3.0, 0.5, 7.0],
        }
    )
    table = return_vs_energy(metrics, curve)
    assert table[["env_steps", "return_mean", "joules"]].values.tolist() == [
        [0, 9.0, 0.0],
        [10, 500.0, 3.5],
    ], f"evaluation energy left out (0 J before training), kept row dropped: {table}"


def test_energy_figures_label_units_and_never_show(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plot helpers must not call show()"))
    counts = {
        "real": OperationCounts(spikes=10, synaptic_events=100, macs=5),
        "evaluation": OperationCounts(spikes=2),
    }
    table = pd.concat(
        [
            price(counts).assign(agent="spiking"),
            price({"training": OperationCounts(macs=50)}).assign(agent="dense"),
        ]
    )
    ax = plot_energy_breakdown(table, by="agent")
    heights = sum(p.get_height() for p in ax.patches)
    assert heights == pytest.approx(table["joules"].sum()), "the stacked bars add up to the table"
    assert ax.get_ylabel() == "energy (J)" and len(ax.get_xticklabels()) == 2 * len(SHIPPED_PROFILES)
    plt.close(ax.figure)
    data = pd.DataFrame(
        {
            "profile": ["a", "a", "b", "b"],
            "joules": [0.0, 1.0, 0.0, 3.0],
            "return_mean": [10.0, 500.0, 10.0, 500.0],
        }
    )
    ax = plot_return_vs_energy(data, threshold=475.0)
    assert len(ax.get_lines()) == 3, "one line per profile and the threshold"
    assert "(J)" in ax.get_xlabel() and "return" in ax.get_ylabel()
    plt.close(ax.figure)
