"""The spiking actor-critic: a Brian2 network that learns a policy online with reward-based e-prop.

Architecture (all in one Brian2 ``Network``)::

    observation --population code--> input neurons --W_in--> recurrent LIF/ALIF layer
        --W_out--> leaky readouts: n_actions policy logits + 1 value

The environment runs inside the network through the single network operation of
:mod:`nmbrl_brian.envs.brian_bridge`, one environment step per ``T_env`` of network
time. Learning is local and online: the readout synapses and biases carry TD(lambda)
traces as state variables (:mod:`nmbrl_brian.equations.actor_critic`); the TD error
and learning signals are broadcast by the bridge at decision times; weights change
in ``run_regularly`` operations. The input and recurrent synapses are e-prop learning
synapses from :mod:`nmbrl_brian.snn` when ``network.hidden_learning`` is on.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import brian2
import numpy as np
from brian2 import Clock, Hz, Network, NeuronGroup, SpikeMonitor, Synapses, ms

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.agents.config import AgentConfig
from nmbrl_brian.devices import check_no_network_operations
from nmbrl_brian.encoding import EncodingConfig, PopulationEncoder
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.envs.brian_bridge import BridgeState, EnvironmentBridge
from nmbrl_brian.equations import actor_critic as ac_eqs
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.training.env_loop import EnvLoop

#: Recurrent leaky integrate-and-fire layer with input current and filtered spike train.
RECURRENT_LIF = """
dv/dt = -v / tau_m : 1 (unless refractory)   # membrane potential (units of threshold)
dzbar/dt = -zbar / tau_out : 1               # spike train filtered like the readouts
I_in : 1                                      # input drive per time step (current mode)
"""


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
        Sizes, time constants, connectivity and input mode of the network.
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
        network,
        seed: int,
        device: str = "runtime",
    ):
        if encoding.kind != "population":
            raise ConfigError("encoding.kind", "'population' for the spiking agent", encoding.kind)
        self.agent_config, self.encoding_config, self.network_config = agent, encoding, network
        self.device = device
        self.seed = seed
        self.encoder = PopulationEncoder(encoding, observation_space.shape[0])
        self.n_actions = int(action_space.n)
        self.rng = np.random.default_rng(seed)
        self.period = network.steps_per_env_step * network.dt_ms * ms
        self._build(seed)
        self.bridge = EnvironmentBridge(
            self,
            self.period_clock,
            gamma=agent.gamma,
            actor_lr=agent.actor_lr,
            critic_lr=agent.critic_lr,
            rng=self.rng,
            name="spiking_ac_bridge",
        )
        self.net.add(self.bridge.operation)

    # ----------------------------------------------------------------------------------
    # Construction
    def _build(self, seed: int) -> None:
        cfg = self.network_config
        rng = np.random.default_rng(seed + 7919)
        brian2.seed(seed)
        n_in, n_rec, n_out = self.encoder.size, cfg.n_recurrent, self.n_actions + 1
        # Explicitly named clocks keep stored states restorable into another instance.
        self.step_clock = Clock(cfg.dt_ms * ms, name="ac_step_clock")
        self.period_clock = Clock(self.period, name="ac_period_clock")
        step, per = self.step_clock, self.period_clock
        ns = {
            "tau_m": cfg.tau_m_ms * ms,
            "tau_out": cfg.tau_out_ms * ms,
            "v_th": cfg.v_th,
            "gamma_lambda": self.agent_config.gamma * self.agent_config.trace_decay,
            "max_rate": cfg.input_rate_hz * Hz,
        }
        self.namespace = ns
        if cfg.input_kind == "poisson":
            self.inputs = NeuronGroup(
                n_in, "x : 1  # encoded feature in [0, 1]", threshold="rand() < x * max_rate * dt",
                namespace=ns, clock=step, name="ac_input",
            )
        else:
            self.inputs = NeuronGroup(n_in, "x : 1  # encoded feature in [0, 1]", clock=step, name="ac_input")
        self.recurrent = NeuronGroup(
            n_rec, RECURRENT_LIF, threshold="v > v_th", reset="v -= v_th; zbar += 1",
            refractory=cfg.refractory_ms * ms, method="exact", namespace=ns, clock=step, name="ac_recurrent",
        )
        self.readouts = NeuronGroup(n_out, ac_eqs.READOUT_NEURON, method="exact", namespace=ns, clock=step, name="ac_readout")

        # Input -> recurrent: sparse, fixed-scale random weights.
        w_in_scale = cfg.input_weight_scale / np.sqrt(max(1.0, n_in * cfg.p_input))
        if cfg.input_kind == "poisson":
            self.syn_in = Synapses(self.inputs, self.recurrent, "w : 1", on_pre="v_post += w", clock=step, name="ac_syn_in")
        else:
            self.syn_in = Synapses(
                self.inputs, self.recurrent, "w : 1\nI_in_post = w * x_pre : 1 (summed)", clock=step, name="ac_syn_in"
            )
            self.recurrent.run_regularly("v += I_in", clock=step, when="before_groups", name="ac_input_drive")
        brian2.seed(seed)
        self.syn_in.connect(p=cfg.p_input)
        self.syn_in.w = rng.normal(0.0, w_in_scale, len(self.syn_in))
        # Recurrent: sparse, no self-connections.
        self.syn_rec = Synapses(self.recurrent, self.recurrent, "w : 1", on_pre="v_post += w", clock=step, name="ac_syn_rec")
        self.syn_rec.connect(condition="i != j", p=cfg.p_recurrent)
        w_rec_scale = cfg.recurrent_weight_scale / np.sqrt(max(1.0, n_rec * cfg.p_recurrent))
        self.syn_rec.w = rng.normal(0.0, w_rec_scale, len(self.syn_rec))
        brian2.seed(seed + 1)
        # Recurrent -> readouts: all-to-all, learned with TD(lambda) traces.
        self.syn_out = Synapses(
            self.recurrent, self.readouts, ac_eqs.READOUT_SYNAPSE, on_pre=ac_eqs.READOUT_ON_PRE,
            namespace=ns, clock=step, name="ac_syn_out",
        )
        self.syn_out.connect()
        self.syn_out.run_regularly(ac_eqs.READOUT_WEIGHT_UPDATE, clock=per, when="start", order=-5, name="ac_out_w_update")
        self.syn_out.run_regularly(ac_eqs.READOUT_TRACE_UPDATE, clock=per, when="start", order=0, name="ac_out_trace_update")
        self.readouts.run_regularly(ac_eqs.BIAS_UPDATE, clock=per, when="start", order=-5, name="ac_bias_update")
        self.readouts.run_regularly(ac_eqs.BIAS_TRACE_UPDATE, clock=per, when="start", order=0, name="ac_bias_trace_update")
        self.spikes_rec = SpikeMonitor(self.recurrent, record=False, name="ac_spikes_rec")
        self.net = Network(
            self.inputs, self.recurrent, self.readouts, self.syn_in, self.syn_rec, self.syn_out,
            self.spikes_rec, name="spiking_actor_critic",
        )
        self.spikes_in = None
        if cfg.input_kind == "poisson":
            self.spikes_in = SpikeMonitor(self.inputs, record=False, name="ac_spikes_in")
            self.net.add(self.spikes_in)
        self._ticks_run = 0

    # ----------------------------------------------------------------------------------
    # The BridgedNetwork protocol (called by the bridge once per period)
    def read_outputs(self) -> np.ndarray:
        return self.readouts.y[:] + self.readouts.bias[:]

    def begin_period(self) -> None:
        self.readouts.delta[:] = 0.0
        self.readouts.decision[:] = 0.0
        self.readouts.clear[:] = 0.0

    def present(self, obs: np.ndarray) -> None:
        self.inputs.x[:] = self.encoder(obs)

    def apply_td_error(self, delta: float) -> None:
        self.readouts.delta[:] = delta

    def set_learning_signals(self, signals: np.ndarray) -> None:
        self.readouts.L[:] = signals
        self.readouts.decision[:] = 1.0

    def trace_norm(self) -> float:
        zbar = self.recurrent.zbar[:]
        return float(zbar @ zbar)

    def clear_episode_state(self) -> None:
        self.recurrent.v[:] = 0.0
        self.recurrent.zbar[:] = 0.0
        self.readouts.y[:] = 0.0
        self.readouts.clear[:] = 1.0  # traces restart after this period's weight update

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
            saved_bridge = self.bridge.state
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
                self.bridge.state = saved_bridge

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
            "rng": copy.deepcopy(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "network.pkl"
            path.write_bytes(state["brian_state"])
            self.net.restore("checkpoint", filename=str(path), restore_random_state=True)
        self.bridge.state = BridgeState(**state["bridge_state"])
        self.rng.bit_generator.state = state["rng"]

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of the learned parameters by synapse group (and readout bias)."""
        return {
            "w_in": self.syn_in.w[:].copy(),
            "w_rec": self.syn_rec.w[:].copy(),
            "w_out": self.syn_out.w[:].copy(),
            "bias": self.readouts.bias[:].copy(),
        }

    def operation_counts(self) -> OperationCounts:
        """Operations performed so far (for energy accounting with :mod:`nmbrl_brian.energy`)."""
        steps = int(round(float(self.net.t / (self.network_config.dt_ms * ms))))
        periods = int(round(float(self.net.t / self.period)))
        def events(monitor, synapses) -> int:
            fan_out = np.bincount(synapses.i[:], minlength=len(monitor.source))
            return int(np.sum(monitor.count[:] * fan_out))
        n_in, n_rec, n_out = len(self.inputs), len(self.recurrent), len(self.readouts)
        syn_events = events(self.spikes_rec, self.syn_rec) + events(self.spikes_rec, self.syn_out)
        spikes = int(self.spikes_rec.num_spikes)
        if self.spikes_in is not None:
            syn_events += events(self.spikes_in, self.syn_in)
            spikes += int(self.spikes_in.num_spikes)
            input_updates = n_in * steps
        else:
            syn_events += len(self.syn_in) * steps  # current-based: every input synapse every step
            input_updates = 0
        return OperationCounts(
            spikes=spikes,
            synaptic_events=syn_events,
            neuron_updates=(n_rec + n_out) * steps + input_updates,
            synapse_updates=2 * (len(self.syn_out) + n_out) * periods,
            weight_updates=(len(self.syn_out) + n_out) * periods,
        )
