"""The spiking world model as parts of a closed loop: a learner and a dream predictor.

Both are the network of :class:`~nmbrl_brian.world_models.snn_world_model.SNNWorldModel`
(same config, same seed, hence the same connectivity), built on the loop's period; the
``SNNWorldModel`` object keeps the fitted code (encoding range, whitening, target
scalers) and the weights between runs. The learner is what ``SNNWorldModel`` itself runs
(alone in its own :class:`~nmbrl_brian.loop.ClosedLoop`) and what the model-based agent runs
beside itself; :func:`nmbrl_brian.world_models.fitting.fit_in_loop` fits it.
Maths: :mod:`nmbrl_brian.equations.world_model`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
from brian2 import NeuronGroup, Quantity, StateMonitor, TimedArray, linked_var

from nmbrl_brian.equations import dream as dream_eqs
from nmbrl_brian.equations import environment as env_eqs
from nmbrl_brian.equations import world_model as wm_eqs
from nmbrl_brian.equations.direct_readout import READOUT_ACCUMULATE_JOINT
from nmbrl_brian.equations.eprop_synapses import READOUT_ACCUMULATE
from nmbrl_brian.parts.base import Part, ValueReader
from nmbrl_brian.parts.dream import DreamPart, Predictor
from nmbrl_brian.snn.direct_readout import (
    add_direct_readout,
    direct_readout_equations,
    initial_weights,
    weight_variables,
)
from nmbrl_brian.snn.eprop_network import build_eprop_network
from nmbrl_brian.world_models.coding import code_constants, code_layout, input_code

if TYPE_CHECKING:
    from nmbrl_brian.world_models.snn_world_model import SNNWorldModel


def _check_period(model: SNNWorldModel, period: Quantity) -> None:
    net = model.config.network
    if abs(float(net.period - period)) > 1e-12:
        raise ValueError(
            f"world_model.network: expected dt_ms * steps_per_env_step = the loop's period {period}, "
            f"got {net.period}"
        )


def _namespace(model: SNNWorldModel, ns: dict, period: Quantity) -> dict:
    cfg = model.config
    ns.update(
        period_dt=period,
        wm_period_steps=cfg.network.steps_per_env_step,
        wm_error_steps=cfg.error_steps,
        **code_constants(cfg),
    )
    return ns


def _decoder(prefix: str, eprop, n: int, period_clock, namespace: dict) -> tuple[NeuronGroup, dict]:
    """The readouts' mean over the error window of each period, latched at the start of the next."""
    decoder = NeuronGroup(
        n, wm_eqs.DECODER_EQUATIONS, namespace=namespace, clock=eprop.clock, name=f"{prefix}_decoder"
    )
    decoder.y_readout = linked_var(eprop.readout, "y")
    ops = {
        "accumulate": decoder.run_regularly(
            wm_eqs.DECODER_ACCUMULATE, when="after_synapses", order=2, name=f"{prefix}_decoder_accumulate"
        ),
        "latch": decoder.run_regularly(
            wm_eqs.DECODER_LATCH, clock=period_clock, when="start", order=0, name=f"{prefix}_decoder_latch"
        ),
    }
    return decoder, ops


def _period_resets(part: Part, eprop, direct: bool, adaptive: bool) -> dict:
    """Back to rest at the first step of every period (after the last step's gradients)."""

    def reset(group, code, name):
        return group.run_regularly(
            code, clock=part.clock, when="before_thresholds", order=2, name=f"{part.prefix}_{name}"
        )

    code = wm_eqs.period_resets(direct=direct, adaptive=adaptive)
    ops = {
        "input_reset": reset(eprop.inputs, code["inputs"], "input_reset"),
        "recurrent_reset": reset(eprop.recurrent, code["recurrent"], "recurrent_reset"),
        "readout_reset": reset(eprop.readout, code["readout"], "readout_reset"),
    }
    for syn in eprop.learning_synapses:
        key = syn.name.removeprefix(f"{part.prefix}_")
        ops[f"{key}_reset"] = reset(syn, code["synapses"], f"{key}_reset")
    return ops


class WorldModelLearnerPart(Part):
    """The spiking world model learning from a table of real transitions, one per period.

    Period ``p`` of a run presents row ``p`` of the tables (inputs, targets, error weights;
    :meth:`set_rows`). A run presents at most :attr:`rows_per_run` transitions and ends with at
    least one silent row (no input, error weight 0), in whose first step the last
    transition's update is applied, so the weights after a run hold every update of it.

    Parameters
    ----------
    model : SNNWorldModel
        The model: config, and (once it has seen data) its fitted code.
    period : Quantity
        The loop's period (must equal the model's ``dt_ms * steps_per_env_step``).
    periods_per_run : int
        Rows of the tables (the loop's ``periods_per_run``; at least 2).
    prefix : str
        Object-name prefix.
    record_outputs : bool
        Also build a decoder and a monitor of every period's prediction (the mean readout over
        its error window): the loop's records of this part then hold ``samples["y_period"]``,
        shape ``(periods, n_outputs)``, row ``k`` the prediction of the period before the
        ``k``-th of the run (row 0: of the run before).

    Attributes
    ----------
    periods_per_run : int
        Rows of the tables (a loop of this part alone runs this many periods at a time).
    rows_per_run : int
        Transitions one run presents at most (``periods_per_run - 1``).
    recorded : dict
        ``{"y_period": (monitor, "y_period")}`` with ``record_outputs``, else empty.
    """

    def __init__(
        self,
        model: SNNWorldModel,
        *,
        period: Quantity,
        periods_per_run: int,
        prefix: str = "wm",
        record_outputs: bool = False,
    ):
        _check_period(model, period)
        rows = int(periods_per_run)
        if rows < 2:
            raise ValueError(
                f"periods_per_run: expected an integer >= 2 (a transition and a silent row), got {rows}"
            )
        self.model, self.period, self.prefix, self.n_copies = model, period, prefix, 1
        self.periods_per_run, self.rows_per_run = rows, rows - 1
        cfg = model.config
        self.clock = self.period_clock()
        self.joint = cfg.readout_gain > 0
        extra = (
            direct_readout_equations(cfg.direct_normalized, joint=self.joint)
            if cfg.direct_readout
            else {"inputs": "", "readout": ""}
        )
        extra = {
            **extra,
            "inputs": extra["inputs"] + wm_eqs.LEARNER_INPUT_EQUATIONS,
            "readout": extra["readout"] + wm_eqs.LEARNER_READOUT_EQUATIONS,
        }
        self.eprop = e = build_eprop_network(
            model.n_inputs,
            model.n_outputs,
            cfg.network,
            input_kind="current",
            error_mode="external",
            seed=cfg.seed,
            name_prefix=prefix,
            extra_equations=extra,
            readout_accumulate=READOUT_ACCUMULATE_JOINT if self.joint else READOUT_ACCUMULATE,
        )
        self.direct = None
        if cfg.direct_readout:
            self.direct = add_direct_readout(
                e,
                model.direct_connections(),
                normalized=cfg.direct_normalized,
                learning_rate=0.0,
                joint_gain=cfg.readout_gain,
            )
        self.tables_ = {
            "inputs": TimedArray(np.zeros((rows, model.n_inputs)), dt=period, name=f"{prefix}_table_inputs"),
            "targets": TimedArray(
                np.zeros((rows, model.n_outputs)), dt=period, name=f"{prefix}_table_targets"
            ),
            "weights": TimedArray(
                np.zeros((rows, model.n_outputs)), dt=period, name=f"{prefix}_table_weights"
            ),
        }
        ns = _namespace(model, e.namespace, period)
        for table in self.tables_.values():
            ns[table.name] = table
        self.operations = {
            "drive": self.at_period_start(
                e.inputs, wm_eqs.learner_input_drive(self.tables_["inputs"].name), 0, "drive"
            ),
            "targets": self.at_period_start(
                e.readout,
                wm_eqs.learner_targets(self.tables_["targets"].name, self.tables_["weights"].name),
                0,
                "targets",
            ),
            "error": e.readout.run_regularly(
                wm_eqs.LEARNER_ERROR, when="after_synapses", order=1, name=f"{prefix}_error"
            ),
            **_period_resets(self, e, cfg.direct_readout, cfg.network.neuron_model == "ALIF"),
        }
        self.objects = [*e.objects, *([self.direct.synapses] if self.direct else [])]
        self.recorded: dict[str, tuple[Any, str]] = {}
        if record_outputs:
            self.decoder, ops = _decoder(prefix, e, model.n_outputs, self.clock, ns)
            self.operations.update({f"decoder_{k}": op for k, op in ops.items()})
            self.monitor = StateMonitor(
                self.decoder,
                "y_period",
                record=True,
                clock=self.clock,
                when="start",
                order=1,
                name=f"{prefix}_prediction_monitor",
            )
            self.objects += [self.decoder, self.monitor]
            self.recorded["y_period"] = (self.monitor, "y_period")
        self._pending: list[np.ndarray] | None = None
        if model.weights is None:
            model.weights = self.initial_weights()

    def initial_weights(self) -> dict[str, np.ndarray]:
        """The weights as built (by the names of :meth:`weight_variables`)."""
        return initial_weights(self.eprop, self.direct)

    def weight_variables(self) -> dict[str, tuple[Any, str]]:
        """Learned parameters by the model's names (``w_in``, ``w_rec``, ``w_out``, ``b_out``, ``w_direct``)."""
        return weight_variables(self.eprop, self.direct)

    def weight_values(self, weights: dict[str, np.ndarray]) -> dict[tuple[Any, str], np.ndarray]:
        """Values that load ``weights`` (e.g. :attr:`SNNWorldModel.weights`) into the learner."""
        return {
            (obj, var): np.asarray(weights[key], dtype=float)
            for key, (obj, var) in self.weight_variables().items()
            if key in weights
        }

    def read_weights(self, value: ValueReader) -> dict[str, np.ndarray]:
        """Copies of the current weights, read with the loop's ``value``."""
        return {key: np.array(value(obj, var)) for key, (obj, var) in self.weight_variables().items()}

    def learning_rate_values(self, rates: tuple[float, float, float]) -> dict:
        """Values setting the hidden, readout and direct step sizes (normalised jointly, the
        readout weights take the direct pathway's step and the readout biases the readout step)."""
        hidden, readout, direct = rates
        values = {(syn, "lr"): np.array([hidden]) for syn in self.eprop.learning_synapses}
        values[(self.eprop.syn_out, "lr")] = np.array([direct if self.joint else readout])
        values[(self.eprop.readout, "lr_b")] = np.array([readout])
        if self.direct is not None:
            values[(self.direct.synapses, "lr")] = np.array([direct])
        return values

    def set_rows(self, inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> None:
        """The rows of the next run (at most :attr:`rows_per_run`; the rest is padded with zeros)."""
        if len(inputs) > self.rows_per_run:
            raise ValueError(f"set_rows: expected at most {self.rows_per_run} rows, got {len(inputs)}")
        self._pending = [np.asarray(a, dtype=float) for a in (inputs, targets, weights)]

    def run_values(self) -> dict:
        """Every run starts at row 0 of its tables."""
        return {
            (group, "wm_row"): np.zeros(len(group), dtype=np.int32)
            for group in (self.eprop.inputs, self.eprop.readout)
        }

    def tables(self, value: ValueReader, n_periods: int) -> dict[TimedArray, np.ndarray]:
        out = {}
        pending = self._pending or [np.zeros((0, t.values.shape[1])) for t in self.tables_.values()]
        for table, data in zip(self.tables_.values(), pending):
            block = np.zeros(table.values.shape)
            block[: len(data)] = data
            out[table] = block
        self._pending = None
        return out


class SpikingPredictor(Predictor):
    """The spiking world model as a dream's model: one copy of the network per action.

    Parameters
    ----------
    model : SNNWorldModel
        The model whose config, connectivity and fitted code the copies share.
    n_copies : int
        Copies of the loop (the dream's copies).
    prefix : str
        Object-name prefix of the copies.
    """

    def __init__(self, model: SNNWorldModel, *, n_copies: int = 1, prefix: str = "dreamwm"):
        self.model, self.prefix = model, prefix
        self.n_loop_copies = n_copies
        d, n_out = model.obs_dim, model.n_outputs
        self.obs_equations = "delta_mean : 1\ndelta_std : 1\n" + "".join(
            f"pred_{a} : 1 (linked)\n" for a in range(model.n_actions)
        )
        self.env_equations = "reward_mean : 1\nreward_std : 1\n" + "".join(
            f"rpred_{a} : 1 (linked)\n" for a in range(model.n_actions)
        )
        if model.learns_termination:
            self.learns_termination = True
            self.env_equations += "".join(f"tpred_{a} : 1 (linked)\n" for a in range(model.n_actions))
        self.n_out, self.obs_dim = n_out, d

    def attach(self, dream: DreamPart) -> list:
        model, cfg = self.model, self.model.config
        _check_period(model, dream.period)
        a_n, b, d = model.n_actions, dream.n_copies, model.obs_dim
        copies = b * a_n  # copy c = (loop copy c // A, action c % A)
        net_cfg = dataclasses.replace(cfg.network, hidden_learning=False)  # same connectivity, no traces
        extra = (
            direct_readout_equations(cfg.direct_normalized)
            if cfg.direct_readout
            else {"inputs": "", "readout": ""}
        )
        extra["inputs"] += wm_eqs.input_code_equations(d)
        self.eprop = e = build_eprop_network(
            model.n_inputs,
            model.n_outputs,
            net_cfg,
            input_kind="current",
            error_mode="external",
            seed=[cfg.seed] * copies,
            name_prefix=self.prefix,
            extra_equations=extra,
            interval_weight_updates=False,
        )
        e.set_learning_rates(hidden=0.0, readout=0.0)
        self.direct = None
        if cfg.direct_readout:
            self.direct = add_direct_readout(
                e, model.direct_connections(), normalized=cfg.direct_normalized, learning_rate=0.0
            )
        ns = _namespace(model, e.namespace, dream.period)
        self.clock = dream.clock
        # Constants of the code: kind, dimension, action of each input neuron (per copy alike).
        layout = code_layout(cfg, d, a_n)
        e.inputs.code_kind = np.tile(layout.kind, copies)
        e.inputs.code_dim = np.tile(layout.dim, copies)
        e.inputs.code_action = np.tile(layout.action, copies)
        e.inputs.copy_action = np.repeat(np.arange(copies) % a_n, model.n_inputs)
        # A neutral, finite code until values_from loads a fitted one: a zero tuning width gives
        # 0/0 = NaN, and under standalone the idle dream computes during real phases too.
        e.inputs.code_width, e.inputs.code_high = 1.0, 1.0
        loop_copy_of_input = np.repeat(np.arange(copies) // a_n, model.n_inputs)
        for k in range(d):
            setattr(e.inputs, f"s_{k}", linked_var(dream.obs_port, "obs", index=loop_copy_of_input * d + k))
        self.decoder, decoder_ops = _decoder(self.prefix, e, copies * model.n_outputs, dream.clock, ns)
        ops = {
            "encode": e.inputs.run_regularly(
                wm_eqs.input_encode(d),
                clock=dream.clock,
                when="start",
                order=env_eqs.ORDER_ENCODE,
                name=f"{self.prefix}_encode",
            ),
            **decoder_ops,
        }
        resets = _period_resets(
            _Clocked(self.prefix, dream.clock), e, cfg.direct_readout, cfg.network.neuron_model == "ALIF"
        )
        ops.update(resets)
        # The dream reads every action's prediction of its own copy and dimension.
        obs_copy = np.repeat(np.arange(b), d)
        obs_dim = np.tile(np.arange(d), b)
        for a in range(a_n):
            setattr(
                dream.obs_port,
                f"pred_{a}",
                linked_var(self.decoder, "y_period", index=(obs_copy * a_n + a) * model.n_outputs + obs_dim),
            )
            setattr(
                dream.env,
                f"rpred_{a}",
                linked_var(self.decoder, "y_period", index=(np.arange(b) * a_n + a) * model.n_outputs + d),
            )
            if model.learns_termination:
                setattr(
                    dream.env,
                    f"tpred_{a}",
                    linked_var(
                        self.decoder, "y_period", index=(np.arange(b) * a_n + a) * model.n_outputs + d + 1
                    ),
                )
        scale = f"/{cfg.target_scale!r}"
        delta = dream_eqs.select_by_action([f"pred_{a}{scale}*delta_std + delta_mean" for a in range(a_n)])
        dream.operations["predict"] = dream.at_period_start(
            dream.obs_port, f"obs_next = obs + {delta}\n", env_eqs.ORDER_LATCH, "predict"
        )
        reward = dream_eqs.select_by_action(
            [f"rpred_{a}{scale}*reward_std + reward_mean" for a in range(a_n)]
        )
        code = f"reward_next = {reward}\n"
        if model.learns_termination:
            code += "failed_next = " + dream_eqs.select_by_action([f"tpred_{a}" for a in range(a_n)]) + "\n"
        dream.operations["predict_reward"] = dream.at_period_start(
            dream.env, code, env_eqs.ORDER_LATCH, "predict_reward"
        )
        self.operations = ops
        self.dream = dream
        return [*e.objects, *([self.direct.synapses] if self.direct else []), self.decoder]

    def values_from(self, model: SNNWorldModel) -> dict[tuple[Any, str], np.ndarray]:
        """Values that load the model's current weights and fitted code into every copy."""
        if model.encoder is None:
            raise ValueError("model: fit the world model to some data before dreaming in it")
        e, dream = self.eprop, self.dream
        copies = e.n_copies
        values: dict[tuple[Any, str], np.ndarray] = {}
        for key, (obj, var) in weight_variables(e, self.direct).items():
            if key in model.weights:
                values[(obj, var)] = np.tile(np.asarray(model.weights[key], dtype=float), copies)
        code = input_code(model)
        for name in ("center", "width", "low", "high"):
            values[(e.inputs, f"code_{name}")] = np.tile(getattr(code, name), copies)
        for dd in range(model.obs_dim):
            values[(e.inputs, f"code_row_{dd}")] = np.tile(code.rows[dd], copies)
            values[(e.inputs, f"code_mean_{dd}")] = np.full(copies * model.n_inputs, float(code.mean[dd]))
        b = dream.n_copies
        values[(dream.obs_port, "delta_mean")] = np.tile(model.delta_scaler.mean, b)
        values[(dream.obs_port, "delta_std")] = np.tile(model.delta_scaler.std, b)
        values[(dream.env, "reward_mean")] = np.full(b, float(np.asarray(model.reward_scaler.mean)))
        values[(dream.env, "reward_std")] = np.full(b, float(np.asarray(model.reward_scaler.std)))
        return values


@dataclasses.dataclass
class _Clocked:
    """The part-like bits :func:`_period_resets` needs (a name prefix and a period clock)."""

    prefix: str
    clock: Any
