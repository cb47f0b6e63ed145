"""Energy accounting: operation counts per phase, priced by hardware profiles kept as data.

Every network reports :class:`OperationCounts` (spikes, synaptic events, neuron and synapse
updates, weight updates, multiply-accumulates of dense code), per phase of training when it
can (``{"real": ..., "dream": ..., "evaluation": ...}``; :func:`phase_counts`). An
:class:`EnergyProfile` prices each kind of operation as a sum of published per-event costs.

The profiles are data, not code: ``energy_profiles.toml`` beside this module holds the shipped
ones (the file's header documents the format), each cost with its source:

- ``loihi``: Intel Loihi, Davies et al. (2018), IEEE Micro 38(1):82-99, Table 2 (synaptic
  spike op 23.6 pJ, synaptic update 120 pJ, neuron update 52 pJ inactive / 81 pJ active,
  spike within a tile 1.7 pJ).
- ``spinnaker2`` and ``spinnaker1``: SpiNNaker 2 prototype and first-generation SpiNNaker,
  energies per synaptic event and per neuron update after Hoeppner et al. (2019), IEEE TCAS-I
  66(8):2973-2986, as transcribed in KerasSpiking; the other operations are estimates.
- ``cmos45_fp32``, ``cmos45_fp32_sram``, ``cmos45_fp32_dram``: 45 nm CMOS, Horowitz (2014),
  ISSCC: fp32 multiply 3.7 pJ and add 0.9 pJ, alone, with operands in an 8 KB SRAM (10 pJ per
  64-bit access) or with weights and traces in DRAM (1.3 nJ per 64-bit access).
- ``cmos45_int``: the same arithmetic in integers, for ``network.numerics = "fixed"`` (Horowitz
  2014: 8-bit multiply 0.2 pJ and add 0.03 pJ, 32-bit multiply 3.1 pJ and add 0.1 pJ).

A user adds profiles with a file of the same form, named in the run config
(``energy_profiles = ["my_profiles.toml"]``); :func:`load_profiles` reads the shipped file and
then the user's. :func:`price` turns ``{phase: OperationCounts}`` into tidy rows
``phase, operation, count, profile, joules``.

The figures cover the dynamic energy of the events they name (no static power, no host, no
off-chip I/O unless a profile says so), so they compare computation, not whole systems.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from nmbrl_brian.errors import ConfigError


@dataclass(frozen=True)
class OperationCounts:
    """How many operations of each kind a network performed."""

    spikes: int = 0
    """Spikes emitted (each is routed once)."""
    synaptic_events: int = 0
    """Spike arrivals at synapses (one per spike per outgoing synapse)."""
    neuron_updates: int = 0
    """Neuron state updates (neurons x time steps)."""
    synapse_updates: int = 0
    """Clock-driven synapse state updates (eligibility traces: synapses x time steps, minus skipped)."""
    weight_updates: int = 0
    """Learning-rule weight writes."""
    macs: int = 0
    """Multiply-accumulates of dense (non-spiking) arithmetic."""

    def __add__(self, other: OperationCounts) -> OperationCounts:
        return OperationCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)}
        )

    def as_dict(self) -> dict[str, int]:
        """The counts by field name."""
        return dataclasses.asdict(self)


#: The kinds of operation, in :class:`OperationCounts` order; every profile prices all of them.
OPERATIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(OperationCounts))
#: Columns of a priced table (:func:`price`), in order.
PRICE_COLUMNS = ("phase", "operation", "count", "profile", "joules")
#: The phase whose operations are not training (greedy evaluation episodes).
EVALUATION_PHASE = "evaluation"
#: The phase of agents that report one total for the whole of training.
TRAINING_PHASE = "training"
#: The file of shipped profiles (package data).
SHIPPED_PROFILES_FILE = Path(__file__).with_name("energy_profiles.toml")

_FORMAT = "the format of nmbrl_brian/energy_profiles.toml"
_PROFILE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Cost:
    """Energy of one primitive event (a synaptic op, a multiply, a memory access)."""

    name: str
    """Dotted name, ``<group>.<cost>``, e.g. ``horowitz2014.fp32_mult``."""
    pj: float
    """Energy of one event in picojoules."""
    source: str
    """What the number is and where it is published."""
    note: str = ""
    """Caveats (optional)."""


@dataclass(frozen=True)
class EnergyProfile:
    """Energy per operation of one chip: each kind of operation as a sum of :class:`Cost` s."""

    name: str
    """Label in tables and figures (letters, digits, underscores)."""
    title: str
    """What chip, technology and assumptions."""
    uses: Mapping[str, Mapping[str, float]]
    """Per operation kind: cost name -> how many of that event one operation takes."""
    prices_pj: Mapping[str, float]
    """Per operation kind: picojoules of one operation (the sum of multiplicity x cost)."""
    notes: Mapping[str, str]
    """Per operation kind: what is assumed (may be empty)."""
    file: str = ""
    """The file that defines the profile."""

    def breakdown(self, counts: OperationCounts, phase: str = TRAINING_PHASE) -> pd.DataFrame:
        """Energy per kind of operation as tidy rows (columns :data:`PRICE_COLUMNS`)."""
        return price({phase: counts}, [self])

    def joules(self, counts: OperationCounts) -> float:
        """Total energy of ``counts`` in joules."""
        return float(sum(n * self.prices_pj[op] / 1e12 for op, n in counts.as_dict().items()))


# --------------------------------------------------------------------------------------
# Reading profile files, with one-line errors
# --------------------------------------------------------------------------------------


def _read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("energy_profiles", "an existing TOML file of energy profiles", str(path))
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "a valid TOML file of energy profiles", note=str(exc)) from None


def _number(value: Any, field: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(field, "a finite number >= 0", value)
    return float(value)


def _text(value: Any, field: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(field, "a non-empty string" if required else "a string", value)
    return value


def _table(value: Any, field: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(field, what, value)
    return value


def _known_keys(table: dict[str, Any], allowed: tuple[str, ...], field: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{field}.{key}", "one of " + ", ".join(allowed) + f" ({_FORMAT})", note="unknown key"
            )


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (TOML dotted keys come back as nested tables)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _read_costs(table: dict[str, Any], label: str, prefix: str = "") -> list[Cost]:
    """The costs of a ``[costs]`` table: a table with ``pj`` is a cost, any other table a group."""
    costs = []
    for key, value in table.items():
        field = f"{label}: costs.{prefix}{key}"
        if key == "reference" and prefix:
            _text(value, field)
            continue
        value = _table(value, field, "a cost table (pj, source) or a group of costs")
        if "pj" not in value:
            costs.extend(_read_costs(value, label, f"{prefix}{key}."))
            continue
        _known_keys(value, ("pj", "source", "note"), field)
        costs.append(
            Cost(
                name=f"{prefix}{key}",
                pj=_number(value["pj"], f"{field}.pj"),
                source=_text(value.get("source"), f"{field}.source"),
                note=_text(value.get("note", ""), f"{field}.note", required=False),
            )
        )
    return costs


def _read_profile(name: str, table: Any, label: str, costs: Mapping[str, Cost]) -> EnergyProfile:
    field = f"{label}: profiles.{name}"
    if not _PROFILE_NAME.match(name):
        raise ConfigError(field, "a profile name of letters, digits and underscores, starting with a letter")
    table = _table(table, field, "a table with title and operations")
    _known_keys(table, ("title", "operations"), field)
    title = _text(table.get("title"), f"{field}.title")
    operations = _table(
        table.get("operations"), f"{field}.operations", "a table pricing every operation kind"
    )
    _known_keys(operations, OPERATIONS, f"{field}.operations")
    missing = [op for op in OPERATIONS if op not in operations]
    if missing:
        raise ConfigError(
            f"{field}.operations", "a price for every operation kind", note="missing " + ", ".join(missing)
        )
    uses, prices, notes = {}, {}, {}
    for op in OPERATIONS:
        op_field = f"{field}.operations.{op}"
        entry = _table(operations[op], op_field, "a table {uses = {<cost> = multiplicity, ...}, note = ...}")
        _known_keys(entry, ("uses", "note"), op_field)
        used = _flatten(_table(entry.get("uses"), f"{op_field}.uses", "a table of cost name = multiplicity"))
        for cost in used:
            if cost not in costs:
                raise ConfigError(
                    f"{op_field}.uses.{cost}", "a cost defined under [costs] of this or the shipped file"
                )
        uses[op] = {cost: _number(n, f"{op_field}.uses.{cost}") for cost, n in used.items()}
        prices[op] = float(sum(n * costs[cost].pj for cost, n in uses[op].items()))
        notes[op] = _text(entry.get("note", ""), f"{op_field}.note", required=False)
    return EnergyProfile(name, title, uses, prices, notes, file=label)


@functools.lru_cache(maxsize=1)
def _shipped_data() -> dict[str, Any]:
    return _read_toml(SHIPPED_PROFILES_FILE)


def load_profiles(files: Iterable[str | Path] = ()) -> dict[str, EnergyProfile]:
    """The shipped profiles, then the profiles of each file in ``files``, by name.

    A file may define ``[costs]`` and ``[profiles]`` tables (format: the header of
    ``nmbrl_brian/energy_profiles.toml``); its profiles may use the shipped costs. No file may
    define a cost or profile name that is already defined.

    Raises
    ------
    ConfigError
        One line naming the file and the offending key: a missing or malformed file, an
        unknown key, a negative or non-numeric cost, an operation kind not priced, an unknown
        cost, a duplicate name.
    """
    sources = [(str(SHIPPED_PROFILES_FILE), _shipped_data())]
    sources += [(str(path), _read_toml(path)) for path in files]
    costs: dict[str, Cost] = {}
    cost_files: dict[str, str] = {}
    for label, data in sources:
        _known_keys(data, ("costs", "profiles"), label)
        for cost in _read_costs(_table(data.get("costs", {}), f"{label}: costs", "a table of costs"), label):
            if cost.name in costs:
                raise ConfigError(
                    f"{label}: costs.{cost.name}",
                    f"a cost name not defined yet (it is defined in {cost_files[cost.name]})",
                )
            costs[cost.name], cost_files[cost.name] = cost, label
    profiles: dict[str, EnergyProfile] = {}
    for label, data in sources:
        for name, table in _table(
            data.get("profiles", {}), f"{label}: profiles", "a table of profiles"
        ).items():
            if name in profiles:
                raise ConfigError(
                    f"{label}: profiles.{name}",
                    f"a profile name not defined yet (it is defined in {profiles[name].file})",
                )
            profiles[name] = _read_profile(name, table, label, costs)
    return profiles


# --------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------


def phase_counts(agent: Any) -> dict[str, OperationCounts] | None:
    """``{phase: OperationCounts}`` of an agent: its ``operation_counts_by_phase()`` when it has one,
    else ``{"training": operation_counts()}``; None for an agent that counts nothing."""
    by_phase = getattr(agent, "operation_counts_by_phase", None)
    if by_phase is not None:
        return dict(by_phase())
    total = getattr(agent, "operation_counts", None)
    return None if total is None else {TRAINING_PHASE: total()}


def price(
    counts_by_phase: Mapping[str, OperationCounts],
    profiles: Mapping[str, EnergyProfile] | Iterable[EnergyProfile] | None = None,
) -> pd.DataFrame:
    """Price operation counts per phase with every profile.

    Parameters
    ----------
    counts_by_phase : mapping of str to OperationCounts
        Counts per phase, e.g. ``{"real": ..., "dream": ..., "evaluation": ...}``.
    profiles : mapping or iterable of EnergyProfile, optional
        The profiles (default: the shipped ones, :data:`SHIPPED_PROFILES`).

    Returns
    -------
    pandas.DataFrame
        Tidy rows ``phase, operation, count, profile, joules``: one per phase, profile and
        operation kind, in that nesting order; ``joules = count * price_pj / 1e12``.
    """
    if profiles is None:
        profiles = SHIPPED_PROFILES
    if isinstance(profiles, Mapping):
        profiles = profiles.values()
    rows = [
        (phase, op, int(n), profile.name, n * profile.prices_pj[op] / 1e12)
        for phase, counts in counts_by_phase.items()
        for profile in profiles
        for op, n in counts.as_dict().items()
    ]
    table = pd.DataFrame(rows, columns=list(PRICE_COLUMNS))
    return table.astype({"count": "int64", "joules": "float64"})


def counts_from_table(table: pd.DataFrame) -> dict[str, OperationCounts]:
    """The ``{phase: OperationCounts}`` behind a priced table (e.g. a run's ``energy.csv``), to price
    it again with other profiles: ``price(counts_from_table(table), load_profiles([my_file]))``."""
    out: dict[str, OperationCounts] = {}
    for phase, rows in table.drop_duplicates(["phase", "operation"]).groupby("phase", sort=False):
        out[str(phase)] = OperationCounts(**{op: int(n) for op, n in zip(rows["operation"], rows["count"])})
    return out


def training_joules(table: pd.DataFrame) -> pd.Series:
    """Joules per profile of every phase but :data:`EVALUATION_PHASE` (index: profile, in table order)."""
    training = table[table["phase"] != EVALUATION_PHASE]
    return training.groupby("profile", sort=False)["joules"].sum()


def return_vs_energy(metrics: pd.DataFrame, curve: pd.DataFrame) -> pd.DataFrame:
    """Each evaluation's return beside the training energy spent by then.

    Parameters
    ----------
    metrics : pandas.DataFrame
        A run's ``metrics.csv`` (rows of a kept policy, ``policy == "kept"``, are left out).
    curve : pandas.DataFrame
        A run's ``energy_curve.csv``: ``env_steps, phase, profile, joules`` at each evaluation.

    Returns
    -------
    pandas.DataFrame
        Columns ``env_steps, return_mean, return_std, profile, joules`` (joules: cumulative, all
        phases but evaluation), one row per evaluation and profile.
    """
    if "policy" in metrics:
        metrics = metrics[metrics["policy"] != "kept"]
    training = curve["joules"].where(curve["phase"] != EVALUATION_PHASE, 0.0)  # 0 J where only evaluation ran
    spent = curve.assign(joules=training).groupby(["env_steps", "profile"], sort=False)["joules"].sum()
    spent = spent.reset_index()
    merged = metrics[["env_steps", "return_mean", "return_std"]].merge(spent, on="env_steps")
    return merged.sort_values(["profile", "env_steps"], kind="stable").reset_index(drop=True)


#: The shipped profiles by name (read once from :data:`SHIPPED_PROFILES_FILE`).
SHIPPED_PROFILES: Mapping[str, EnergyProfile] = MappingProxyType(load_profiles())
#: Intel Loihi (Davies et al. 2018, Table 2): the ``loihi`` profile.
LOIHI = SHIPPED_PROFILES["loihi"]
#: 45 nm CMOS, 32-bit floating point arithmetic only (Horowitz 2014): the ``cmos45_fp32`` profile.
CMOS_45NM_FP32 = SHIPPED_PROFILES["cmos45_fp32"]
