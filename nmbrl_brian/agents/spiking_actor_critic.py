"""The spiking actor-critic: an e-prop network that learns a policy online from rewards.

Architecture (one Brian2 ``Network``, built by :func:`nmbrl_brian.snn.build_eprop_network`)::

    observation --population code--> input neurons --W_in--> recurrent LIF/ALIF layer
        --W_out--> leaky readouts: n_actions policy logits + 1 value

The environment runs inside the network through the single network operation of
:mod:`nmbrl_brian.envs.brian_bridge`, one environment step per ``T_env`` of network
time. Learning is reward-based e-prop (:mod:`nmbrl_brian.equations.actor_critic`):
eligibility traces and TD(lambda) traces are synaptic state variables, the bridge
broadcasts the TD error and the learning signals, and weights change in
``run_regularly`` operations. Readout weights take steps ``delta * z`` (their step
sizes ``agent.actor_lr``/``agent.critic_lr`` are in the learning signals); input and
recurrent weights take ``network.learning_rate * delta * z`` when
``network.hidden_learning`` is on.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import brian2
import numpy as np
from brian2 import Clock, Network, ms

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.agents.config import AgentConfig
from nmbrl_brian.devices import check_no_network_operations
from nmbrl_brian.encoding import EncodingConfig, PopulationEncoder
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.envs.brian_bridge import BridgeState, EnvironmentBridge
from nmbrl_brian.equations import actor_critic as ac_eqs
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.snn.config import SpikingNetworkConfig
from nmbrl_brian.snn.eprop_network import build_eprop_network
from nmbrl_brian.training.env_loop import EnvLoop


class SpikingActorCritic(BaseAgent):
    """A spiking actor-critic trained online with reward-based e-prop.

    Parameters
    ----------
    observation_space, action_space : gymnasium spaces
        1-D Box observations and Discrete actions.
    agent : AgentConfig
        Discount, trace decay and step sizes.
    encoding : EncodingConfig
        Population coding of observations into input neurons (``kind`` must be
        ``"population"``).
    network : SpikingNetworkConfig
        Sizes, time constants, connectivity, input mode and hidden learning.
    seed : int
        Seeds connectivity, initial weights, Brian2's ``rand()`` and action sampling.
    device : str
        Must be ``"runtime"``: the gymnasium coupling is a network operation.
    """

    name = "spiking_actor_critic"

    def __init__(
        self,
        observation_space,
        action_space,
        *,
        agent: AgentConfig,
        encoding: EncodingConfig,
        network: SpikingNetworkConfig,
        seed: int,
        device: str = "runtime",
    ):
        if encoding.kind != "population":
            raise ConfigError("encoding.kind", "'population' for the spiking agent", encoding.kind)
        self.agent_config, self.encoding_config, self.network_config = agent, encoding, network
        self.device = device
        self.encoder = PopulationEncoder(encoding, observation_space.shape[0])
        self.n_actions = int(action_space.n)
        self.rng = np.random.default_rng(seed)
        self.period = network.steps_per_env_step * network.dt_ms * ms
        brian2.seed(seed)
        self.eprop = build_eprop_network(
            self.encoder.size, self.n_actions + 1, network, error_mode="external", seed=seed, name_prefix="agent"
        )
        # Explicitly named clocks keep stored states restorable into another instance.
        self.period_clock = Clock(self.period, name="agent_period_clock")
        self._add_td_learning()
        self.bridge = EnvironmentBridge(
            self,
            self.period_clock,
            gamma=agent.gamma,
            actor_lr=agent.actor_lr,
            critic_lr=agent.critic_lr,
            rng=self.rng,
            name="agent_bridge",
        )
        self.net = Network(*self.eprop.objects, self.bridge.operation, name="spiking_actor_critic")
        self._clear_traces_next_period = False

    def _add_td_learning(self) -> None:
        """Replace the supervised per-interval updates by TD(lambda) updates once per env step."""
        e = self.eprop
        e.namespace["gamma_lambda"] = self.agent_config.gamma * self.agent_config.trace_decay
        for key, op in e.operations.items():
            if key.endswith("weight_update") or key == "readout_bias_update":
                op.group.contained_objects.remove(op)  # not part of the network at all
        self.td_synapses = [*e.learning_synapses, e.syn_out]
        self.td_operations = [
            syn.run_regularly(ac_eqs.TD_WEIGHT_UPDATE, clock=self.period_clock, when="start", order=-5,
                              name=f"{syn.name}_td_update")
            for syn in self.td_synapses
        ]
        self.td_operations.append(
            e.readout.run_regularly(ac_eqs.TD_BIAS_UPDATE, clock=self.period_clock, when="start", order=-5,
                                    name="agent_readout_td_update")
        )
        self.td_operations.append(
            e.readout.run_regularly(ac_eqs.CLEAR_LEARNING_SIGNAL, when="end", name="agent_clear_signal")
        )

    # ----------------------------------------------------------------------------------
    # The BridgedNetwork protocol (called by the bridge once per period)
    def read_outputs(self) -> np.ndarray:
        return self.eprop.readout_values()

    def begin_period(self) -> None:
        self._set_step(0.0)
        if self._clear_traces_next_period:
            for syn in self.td_synapses:
                syn.grad[:] = 0.0
            self.eprop.readout.grad_b[:] = 0.0
            self._clear_traces_next_period = False

    def present(self, obs: np.ndarray) -> None:
        self.eprop.set_inputs(self.encoder(obs))

    def apply_td_error(self, delta: float) -> None:
        self._set_step(delta)

    def _set_step(self, delta: float) -> None:
        hidden = -delta * self.network_config.learning_rate
        for syn in self.eprop.learning_synapses:
            syn.lr = hidden
        self.eprop.syn_out.lr = -delta
        self.eprop.readout.lr_b = -delta

    def set_learning_signals(self, signals: np.ndarray) -> None:
        self.eprop.set_errors(signals)

    def trace_norm(self) -> float:
        """Squared norm of all readout eligibilities: the filtered spikes and the bias trace."""
        zbar = self.eprop.recurrent.zbar_out[:]
        bias_trace = float(self.eprop.readout.bbar[0])
        return float(zbar @ zbar) + bias_trace * bias_trace

    def clear_episode_state(self) -> None:
        """Reset neurons and eligibility traces now; the TD(lambda) traces after this period's update."""
        e = self.eprop
        rec_vars = ["v", "I_syn", "ref_left", "psi", "zbar", "zbar_out"] + (
            ["a"] if self.network_config.neuron_model == "ALIF" else []
        )
        for var in rec_vars:
            getattr(e.recurrent, var)[:] = 0.0
        for var in ("s", "zbar"):
            getattr(e.inputs, var)[:] = 0.0
        for var in ("y", "I_syn", "bbar", "err"):
            getattr(e.readout, var)[:] = 0.0
        for syn in e.learning_synapses:
            syn.ebar[:] = 0.0
            if self.network_config.neuron_model == "ALIF":
                syn.eps_a[:] = 0.0
        self._clear_traces_next_period = True

    # ----------------------------------------------------------------------------------
    # Acting and learning
    def interact(
        self,
        loop: EnvLoop,
        *,
        max_steps: int | None = None,
        max_episodes: int | None = None,
        explore: bool = True,
        learn: bool = True,
    ) -> None:
        """Run the network with the environment inside it (see :mod:`nmbrl_brian.envs.brian_bridge`).

        With ``learn=False`` (evaluation) the network and bridge state are stored
        before and restored after, so evaluating never changes what training sees.
        """
        check_no_network_operations(self.net)
        if max_steps is None and max_episodes is None:
            raise ValueError("interact: give max_steps or max_episodes")
        evaluating = not learn
        if evaluating:
            self.net.store("before_evaluation")
            saved_bridge, saved_clear = self.bridge.state, self._clear_traces_next_period
            self.bridge.state = BridgeState()
            self.clear_episode_state()
        self.bridge.attach(
            loop, explore=explore, learn=learn, max_episodes=max_episodes, on_budget_spent=self.net.stop
        )
        try:
            if max_steps is not None:
                target = self.bridge.state.steps + max_steps
                while self.bridge.state.steps < target and not self._episodes_done():
                    self._run_periods(target - self.bridge.state.steps)
            else:
                limit = getattr(loop.model, "max_episode_steps", None) or 1000
                while not self._episodes_done():
                    self._run_periods(max_episodes * (limit + 2))
        finally:
            if evaluating:
                self.net.restore("before_evaluation")
                self.bridge.state, self._clear_traces_next_period = saved_bridge, saved_clear

    def _episodes_done(self) -> bool:
        b = self.bridge
        return b.max_episodes is not None and b.state.episodes >= b.max_episodes

    def _run_periods(self, n: int) -> None:
        self.net.run(n * self.period, namespace={})

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        """Choose an action for one observation outside the closed loop (slow: one ``run`` call).

        The network state is left as it was; nothing is learned.
        """
        self.net.store("before_act")
        self.bridge.operation.active = False
        try:
            self.present(obs)
            self._run_periods(1)
            y = self.read_outputs()[: self.n_actions]
        finally:
            self.bridge.operation.active = True
            self.net.restore("before_act")
        if not explore:
            return int(np.argmax(y))
        p = np.exp(y - y.max())
        return int(self.rng.choice(self.n_actions, p=p / p.sum()))

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Not used: this agent learns inside its network while :meth:`interact` runs."""
        raise NotImplementedError(
            "SpikingActorCritic learns inside its Brian2 network; train it with interact(), not observe()"
        )

    # ----------------------------------------------------------------------------------
    # Checkpoints and accounting
    def state_dict(self) -> dict[str, Any]:
        """Network variables (weights, traces, neuron state, clock, Brian2 RNG), bridge and RNG state."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "network.pkl"
            self.net.store("checkpoint", filename=str(path))
            brian_state = path.read_bytes()
        return {
            "brian_state": brian_state,
            "bridge_state": asdict(self.bridge.state),
            "clear_traces_next_period": self._clear_traces_next_period,
            "rng": copy.deepcopy(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "network.pkl"
            path.write_bytes(state["brian_state"])
            self.net.restore("checkpoint", filename=str(path), restore_random_state=True)
        self.bridge.state = BridgeState(**state["bridge_state"])
        self._clear_traces_next_period = state["clear_traces_next_period"]
        self.rng.bit_generator.state = state["rng"]

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of the learned parameters: ``w_in``, ``w_rec``, ``w_out``, ``b_out``."""
        return self.eprop.get_weights()

    def trace_update_counts(self) -> dict[str, int]:
        """Eligibility-trace updates performed and skipped so far (activity-sparse mode skips some)."""
        return self.eprop.trace_update_counts()

    def operation_counts(self) -> OperationCounts:
        """Operations performed so far (for energy accounting with :mod:`nmbrl_brian.energy`).

        Weight updates happen once per environment period (TD(lambda)), not at the
        supervised update interval.
        """
        periods = int(round(float(self.net.t / self.period)))
        learned = sum(len(s) for s in self.td_synapses) + len(self.eprop.readout)
        return dataclasses.replace(self.eprop.operation_counts(), weight_updates=learned * periods)
