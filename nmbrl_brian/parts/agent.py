"""The spiking actor-critic as a part: population code, e-prop layer and actor-critic head.

Architecture (per copy)::

    obs port --population code--> input neurons --W_in--> recurrent LIF/ALIF layer
        --W_out--> leaky readouts: n_actions policy logits + 1 value --> head --> action

Everything per step and per decision is Brian2 code: the e-prop layer
(:mod:`nmbrl_brian.equations.eprop_neurons`, :mod:`nmbrl_brian.equations.eprop_synapses`),
the encoder (:mod:`nmbrl_brian.equations.population_code`) and the head with its
softmax sampling, TD error, learning signals and TD(lambda) updates
(:mod:`nmbrl_brian.equations.actor_critic`). The part reads the environment's ports
(``obs``, ``reward``, ``terminated``, ``needs_reset``, ``episodes_done``) and offers
``action`` and ``command``; :meth:`connect_environment` makes the links.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from brian2 import NeuronGroup, Synapses, TimedArray, linked_var

from nmbrl_brian import seeding
from nmbrl_brian.encoding import PopulationEncoder
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.equations import actor_critic as ac_eqs
from nmbrl_brian.equations import environment as env_eqs
from nmbrl_brian.equations import population_code as pc_eqs
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.fixed_point import quantised_update
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.parts.base import EnvironmentPart, Part, ValueReader
from nmbrl_brian.snn.direct_readout import add_direct_readout, direct_readout_equations
from nmbrl_brian.snn.eprop_network import build_eprop_network

#: Rows of the uniform-number table: decisions of one copy in one run, at most.
DEFAULT_PERIODS_PER_RUN = 2000
#: Periods per block of the uniform stream (a block is drawn from its own seeded generator).


def uniform_stream(seed: int, start: int, n: int) -> np.ndarray:
    """Uniform numbers ``u_start .. u_{start+n-1}`` of copy seed ``seed``, one per period.

    The stream depends only on the seed and the period index, never on how a training
    run is cut into runs, so chunked runs and one long run draw the same actions.
    """
    block = seeding.UNIFORM_BLOCK
    first, last = start // block, (start + n - 1) // block
    blocks = [seeding.action_uniform_block(seed, b) for b in range(first, last + 1)]
    offset = start - first * block
    return np.concatenate(blocks)[offset : offset + n]


class ActorCriticPart(Part):
    """A spiking actor-critic trained online with reward-based e-prop.

    Parameters
    ----------
    obs_dim, n_actions : int
        Observation dimensions and number of actions.
    agent : AgentConfig
        Discount, trace decay and the actor's and critic's normalised step sizes.
    encoding : EncodingConfig
        Population coding of observations (``kind="population"``).
    network : SpikingNetworkConfig
        Sizes, time constants, connectivity and hidden learning; one environment step
        is ``network.steps_per_env_step`` steps of ``network.dt_ms``.
    seeds : sequence of int
        One seed per copy: connectivity, initial weights and the action-sampling stream.
    periods_per_run : int
        Rows of the uniform table: the most periods one run may take.
    prefix : str
        Object-name prefix.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        *,
        agent: AgentConfig,
        encoding: EncodingConfig,
        network: SpikingNetworkConfig,
        seeds: Sequence[int] = (0,),
        periods_per_run: int = DEFAULT_PERIODS_PER_RUN,
        prefix: str = "agent",
    ):
        self.agent_config, self.encoding_config, self.network_config = agent, encoding, network
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.seeds = [int(s) for s in seeds]
        self.n_copies = b = len(self.seeds)
        self.prefix = prefix
        self.period = network.period
        self.encoder = PopulationEncoder(encoding, obs_dim)
        n_out = self.n_actions + 1
        learn_hidden = network.hidden_learning
        entropy = agent.entropy_bonus > 0
        extras = {
            "inputs": pc_eqs.POPULATION_CODE_EQUATIONS + ac_eqs.NEURON_LINKS,
            "recurrent": ac_eqs.NEURON_LINKS,
            "readout": ac_eqs.READOUT_LINKS + (ac_eqs.READOUT_ENTROPY_LINKS if entropy else ""),
            "syn_out": ac_eqs.SYNAPSE_LINKS,
        }
        if learn_hidden:
            extras["syn_in"] = extras["syn_rec"] = ac_eqs.SYNAPSE_LINKS
        if network.direct_readout:
            extras["inputs"] += direct_readout_equations(False)["inputs"]
        self.eprop = e = build_eprop_network(
            self.encoder.size,
            n_out,
            network,
            error_mode="external",
            seed=self.seeds,
            name_prefix=prefix,
            extra_equations=extras,
            interval_weight_updates=False,
        )
        self.direct = None
        if network.direct_readout:  # learned by the same TD rule as the other readout weights
            self.direct = add_direct_readout(
                e, normalized=False, learning_rate=1.0, extra_equations=ac_eqs.SYNAPSE_LINKS
            )
        self.clock = self.period_clock()
        self.uniforms = TimedArray(
            np.zeros((int(periods_per_run), b)), dt=self.period, name=f"{prefix}_uniforms"
        )
        ns = e.namespace  # shared by all the network's groups
        ns.update(
            gamma=agent.gamma,
            gamma_lambda=agent.gamma * agent.trace_decay,
            actor_lr=agent.actor_lr,
            critic_lr=agent.critic_lr,
            n_actions=self.n_actions,
            period_dt=self.period,
            entropy_bonus=agent.entropy_bonus,
        )
        ns[self.uniforms.name] = self.uniforms

        self.head = NeuronGroup(
            b,
            ac_eqs.head_equations(self.n_actions) + (ac_eqs.HEAD_ENTROPY_EQUATIONS if entropy else ""),
            namespace=ns,
            clock=self.clock,
            name=f"{prefix}_head",
        )
        self.head.copy = np.arange(b)
        self.head.learning, self.head.explore = 1, 1
        self.head.episode_budget = self.head.step_budget = np.iinfo(np.int32).max
        readout_index = np.arange(b)[:, None] * n_out
        for k in range(self.n_actions):
            setattr(self.head, f"logit_{k}", linked_var(e.readout, "y", index=(readout_index + k).ravel()))
        self.head.value = linked_var(e.readout, "y", index=(readout_index + self.n_actions).ravel())
        self.head.bias_trace = linked_var(e.readout, "bbar", index=(readout_index + self.n_actions).ravel())

        # ||zbar_out||^2 per copy, summed at the start of a period (before the head reads it).
        self.trace_norm = self._norm_into_head(
            e.recurrent, network.n_recurrent, ac_eqs.TRACE_NORM_SUM, "trace_norm_post", "trace_norm", ns
        )
        self.direct_norm = None
        if self.direct is not None:
            self.direct_norm = self._norm_into_head(
                e.inputs, self.encoder.size, ac_eqs.DIRECT_NORM_SUM, "direct_norm_post", "direct_norm", ns
            )

        # Links from the head into the layer.
        sizes = {e.inputs: self.encoder.size, e.recurrent: network.n_recurrent, e.readout: n_out}
        copy_of = {g: np.repeat(np.arange(b), n) for g, n in sizes.items()}
        e.readout.role = np.tile(np.arange(n_out), b)
        for var, head_var in (
            ("policy_max", "logit_max"),
            ("policy_partition", "partition"),
            ("signal_scale", "signal_scale"),
            ("chosen_action", "action"),
            ("delta", "delta"),
            ("clear", "clear"),
            *((("policy_entropy", "entropy"),) if entropy else ()),
        ):
            setattr(e.readout, var, linked_var(self.head, head_var, index=copy_of[e.readout]))
        for group in (e.inputs, e.recurrent):
            group.clear = linked_var(self.head, "clear", index=copy_of[group])
        self.td_synapses = [*e.learning_synapses, e.syn_out, *([self.direct.synapses] if self.direct else [])]
        for syn in self.td_synapses:
            syn.delta = linked_var(self.head, "delta", index="syn_copy")
            syn.clear = linked_var(self.head, "clear", index="syn_copy")

        # Encoder constants (dimension-major, as PopulationEncoder ravels).
        enc = self.encoder
        k = encoding.neurons_per_dim
        e.inputs.center = np.tile(enc.centers.ravel(), b)
        e.inputs.width = np.tile(np.repeat(enc.sigma, k), b)
        e.inputs.obs_low = np.tile(np.repeat(enc.low, k), b)
        e.inputs.obs_high = np.tile(np.repeat(enc.high, k), b)
        e.inputs.cutoff = encoding.cutoff

        # Step sizes: eta = 1 for readouts (their step sizes are in err), learning_rate for hidden weights.
        for syn in e.learning_synapses:
            syn.lr = network.learning_rate
        e.syn_out.lr = 1.0
        e.readout.lr_b = 1.0

        at_period_start = self.at_period_start

        alif = network.neuron_model == "ALIF"
        ops = {
            "head": at_period_start(
                self.head,
                ac_eqs.head_step(self.n_actions, self.uniforms.name, entropy=entropy),
                ac_eqs.ORDER_HEAD,
                "head_step",
            ),
            "signals": at_period_start(
                e.readout,
                ac_eqs.READOUT_SIGNAL + (ac_eqs.READOUT_ENTROPY_SIGNAL if entropy else ""),
                ac_eqs.ORDER_SIGNALS,
                "learning_signals",
            ),
            "bias_td": at_period_start(
                e.readout, ac_eqs.TD_BIAS_UPDATE, ac_eqs.ORDER_TD_UPDATE, "readout_td_update"
            ),
            "clear_inputs": at_period_start(
                e.inputs,
                ac_eqs.clear_code(ac_eqs.CLEARED_INPUT + (("zbar_out",) if self.direct else ())),
                ac_eqs.ORDER_CLEAR,
                "clear_inputs",
            ),
            "clear_recurrent": at_period_start(
                e.recurrent,
                ac_eqs.clear_code(ac_eqs.CLEARED_RECURRENT + (("a",) if alif else ())),
                ac_eqs.ORDER_CLEAR,
                "clear_recurrent",
            ),
            "clear_readout": at_period_start(
                e.readout, ac_eqs.clear_code(ac_eqs.CLEARED_READOUT), ac_eqs.ORDER_CLEAR, "clear_readout"
            ),
            "encode": at_period_start(e.inputs, pc_eqs.POPULATION_CODE, env_eqs.ORDER_ENCODE, "encode"),
        }
        fixed = network.numerics == "fixed"  # hidden weights on their grids: stochastically rounded steps
        for syn in self.td_synapses:
            key = syn.name.removeprefix(f"{prefix}_")
            td = ac_eqs.TD_WEIGHT_UPDATE
            td = quantised_update(td) if fixed and syn in e.learning_synapses else td
            ops[f"{key}_td"] = at_period_start(syn, td, ac_eqs.ORDER_TD_UPDATE, f"{key}_td_update")
        for syn in e.learning_synapses:
            key = syn.name.removeprefix(f"{prefix}_")
            cleared = ac_eqs.CLEARED_SYNAPSE + (("eps_a",) if alif else ())
            ops[f"{key}_clear"] = at_period_start(
                syn, ac_eqs.clear_code(cleared), ac_eqs.ORDER_CLEAR, f"{key}_clear"
            )
        #: The synapses and readouts an entropy bonus moves once per period (empty without one).
        self.entropy_targets = (
            [e.syn_out, *([self.direct.synapses] if self.direct else [])] if entropy else []
        )
        for syn in self.entropy_targets:
            key = syn.name.removeprefix(f"{prefix}_")
            ops[f"{key}_entropy"] = at_period_start(
                syn, ac_eqs.ENTROPY_WEIGHT_UPDATE, ac_eqs.ORDER_TD_UPDATE, f"{key}_entropy_update"
            )
        if entropy:
            ops["bias_entropy"] = at_period_start(
                e.readout, ac_eqs.ENTROPY_BIAS_UPDATE, ac_eqs.ORDER_TD_UPDATE, "readout_entropy_update"
            )
        ops["clear_signal"] = e.readout.run_regularly(
            ac_eqs.CLEAR_LEARNING_SIGNAL, when="end", name=f"{prefix}_clear_signal"
        )
        self.operations = ops
        self.objects = [*e.objects, self.head, self.trace_norm]
        if self.direct is not None:
            self.objects += [self.direct.synapses, self.direct_norm]

    def _norm_into_head(self, source, per_copy: int, equations: str, summed: str, name: str, ns: dict):
        """Synapses summing ``source``'s ``zbar_out**2`` of each copy into that copy's head neuron,
        at the start of a period (``summed``: the summed variable), before the head reads it."""
        b = self.n_copies
        syn = Synapses(
            source, self.head, equations, namespace=ns, clock=self.clock, name=f"{self.prefix}_{name}"
        )
        syn.connect(i=np.arange(b * per_copy), j=np.repeat(np.arange(b), per_copy))
        updater = syn.summed_updaters[summed]
        updater.when, updater.order = "start", ac_eqs.ORDER_TRACE_NORM
        return syn

    # ----------------------------------------------------------------------------------
    def connect_environment(self, env: EnvironmentPart) -> None:
        """Read the environment's ports and offer it ``command`` and ``action`` (same copies)."""
        if env.n_copies != self.n_copies:
            raise ValueError(
                f"environment: expected {self.n_copies} copies like the agent, got {env.n_copies}"
            )
        if env.obs_dim != self.obs_dim or env.n_actions != self.n_actions:
            raise ValueError(
                f"environment: expected {self.obs_dim} observation dimensions and {self.n_actions} actions, "
                f"got {env.obs_dim} and {env.n_actions}"
            )
        copies = np.arange(self.n_copies)
        for var in ("reward", "terminated", "needs_reset", "episodes_done", "steps_done"):
            setattr(self.head, var, linked_var(env.env, var, index=copies))
        k = self.encoding_config.neurons_per_dim
        dim_of_input = np.tile(np.repeat(np.arange(self.obs_dim), k), self.n_copies)
        copy_of_input = np.repeat(np.arange(self.n_copies), self.encoder.size)
        self.eprop.inputs.obs = linked_var(
            env.obs_port, "obs", index=copy_of_input * self.obs_dim + dim_of_input
        )
        env.connect_agent(self.head)

    # ----------------------------------------------------------------------------------
    def tables(self, value: ValueReader, n_periods: int) -> dict[TimedArray, np.ndarray]:
        """The uniform numbers of the next run, continuing each copy's stream."""
        rows = self.uniforms.values.shape[0]
        start = np.asarray(value(self.head, "periods_total"), dtype=int)
        table = np.empty((rows, self.n_copies))
        for c, seed in enumerate(self.seeds):
            table[:, c] = uniform_stream(seed, int(start[c]), rows)
        return {self.uniforms: table}

    def run_values(self) -> dict[tuple[Any, str], np.ndarray]:
        return {(self.head, "chunk_period"): np.zeros(self.n_copies, dtype=np.int32)}

    def mode(
        self,
        *,
        learning: bool,
        explore: bool,
        episode_budget: int | None = None,
        step_budget: int | None = None,
    ) -> dict:
        """Head values of a phase: learning on or off, sampling or greedy, episode and step budgets
        (counted by the environment, e.g. from its restart)."""
        unlimited = np.iinfo(np.int32).max
        n = self.n_copies
        return {
            (self.head, "learning"): np.full(n, int(learning), dtype=np.int32),
            (self.head, "explore"): np.full(n, int(explore), dtype=np.int32),
            (self.head, "episode_budget"): np.full(
                n, unlimited if episode_budget is None else episode_budget, dtype=np.int32
            ),
            (self.head, "step_budget"): np.full(
                n, unlimited if step_budget is None else step_budget, dtype=np.int32
            ),
        }

    def fresh_episode(self) -> dict:
        """Head values that forget a pending decision (the environment restarts)."""
        return {(self.head, "has_prev"): np.zeros(self.n_copies, dtype=np.int32)}

    def weight_variables(self) -> dict[str, tuple[Any, str]]:
        """The learned parameters: ``w_in``, ``w_rec``, ``w_out``, ``b_out`` (and ``B``, ``w_direct``)."""
        out = self.eprop.weight_variables()
        if self.direct is not None:
            out["w_direct"] = (self.direct.synapses, "w")
        return out

    @property
    def weights_written_per_period(self) -> int:
        """Weights and biases written once per period while learning: every TD update, and the
        entropy bonus's step of every readout weight and bias (``agent.entropy_bonus`` > 0)."""
        learned = sum(len(s) for s in self.td_synapses) + len(self.eprop.readout)
        if self.entropy_targets:
            learned += sum(len(s) for s in self.entropy_targets) + len(self.eprop.readout)
        return learned

    def operation_counts(self, steps: int, periods: int) -> OperationCounts:
        """Operations of ``steps`` network steps and ``periods`` environment periods (TD updates once per period)."""
        counts = self.eprop.operation_counts()
        return counts.__class__(
            **{**counts.as_dict(), "weight_updates": self.weights_written_per_period * periods}
        )
