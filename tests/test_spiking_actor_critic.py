"""The spiking actor-critic in its closed loop: equations, environment parts, chunking, evaluation.

The agent part is wired to either environment part through the same ports, so the tests
that matter most compare the two (the agent must not notice which one it has) and hold
the in-network learning rule to a NumPy transcription of the equations.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import brian2
import numpy as np
import pytest
from brian2 import Network, NeuronGroup, StateMonitor, TimedArray, linked_var, ms
from scipy import stats

from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic
from nmbrl_brian.config import load_config
from nmbrl_brian.devices import select_device
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.equations import actor_critic as ac_eqs
from nmbrl_brian.equations import environment as env_eqs
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts import ActorCriticPart, GymnasiumPart
from nmbrl_brian.parts.agent import uniform_stream
from nmbrl_brian.world_models.base import BaseWorldModel

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
SMALL = SpikingNetworkConfig(
    n_recurrent=40,
    input_kind="current",
    steps_per_env_step=10,
    tau_out_ms=10.0,
    refractory_ms=0.0,
    input_weight_scale=0.57,
    recurrent_weight_scale=0.3,
    readout_weight_scale=0.0,
    learning_rate=0.01,
)
AGENT = AgentConfig(kind="spiking_actor_critic", actor_lr=0.1, critic_lr=0.1)


def make_agent(seed=0, network=SMALL, environment="gymnasium", **agent_kw):
    select_device("runtime")
    env = EnvironmentWrapper()
    agent = SpikingActorCritic(
        env.observation_space,
        env.action_space,
        agent=dataclasses.replace(AGENT, **agent_kw),
        encoding=EncodingConfig(),
        network=network,
        seed=seed,
        environment=environment,
        periods_per_run=200,
    )
    return agent, env


# --------------------------------------------------------------------------------------
# The agent does not know which environment it is wired to
def test_gymnasium_and_equations_parts_give_the_same_learning():
    """300 steps of learning from scratch (several episodes and their ends) with CartPole as
    gymnasium behind a network operation and as Brian2 equations: same actions, rewards and
    weights. Both start every episode from gymnasium's seeded reset and show float32
    observations; the physics agree to rounding per step, so much longer runs part ways
    (the cart-pole is unstable and the two compute sin and cos differently)."""
    gym_agent, env_a = make_agent(seed=2, environment="gymnasium")
    eq_agent, env_b = make_agent(seed=2, environment="equations")
    loop_a, loop_b = EnvLoop(env_a, seed=7), EnvLoop(env_b, seed=7)
    gym_agent.interact(loop_a, max_steps=300)
    eq_agent.interact(loop_b, max_steps=300)
    a, b = gym_agent.real_transitions, eq_agent.real_transitions
    assert len(a) == len(b) == 300
    assert a.n_episodes >= 5, f"the test should cover several episode ends, got {a.n_episodes}"
    np.testing.assert_array_equal(a.action, b.action, err_msg="actions differ")
    np.testing.assert_array_equal(a.reward, b.reward, err_msg="rewards differ")
    np.testing.assert_array_equal(a.terminated, b.terminated, err_msg="terminations differ")
    np.testing.assert_allclose(a.next_obs, b.next_obs, rtol=0, atol=1e-6, err_msg="observations differ")
    for name, w in gym_agent.weights().items():
        np.testing.assert_allclose(eq_agent.weights()[name], w, rtol=0, atol=1e-9, err_msg=f"{name} differs")
    assert loop_a.episodes == loop_b.episodes and loop_a.env_steps == loop_b.env_steps == 300


# --------------------------------------------------------------------------------------
# The episode-end periods: bootstrap on truncation, none on termination, cleared traces
class ScriptedEnv(BaseWorldModel):
    """Observations from a fixed sequence, reward 0.5 per step; every episode ends after 3 steps."""

    def __init__(self, truncate: bool):
        import gymnasium as gym

        self.observation_space = gym.spaces.Box(-5, 5, (4,))
        self.action_space = gym.spaces.Discrete(2)
        self.truncate, self.t = truncate, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.full(4, 0.1 * (seed % 5), np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t == 3
        obs = np.array([0.3 * self.t, -0.2 * self.t, 0.05, 0.4], np.float32)
        return obs, 0.5, done and not self.truncate, done and self.truncate, {}


def scripted_loop(truncate: bool, network=SMALL):
    select_device("runtime")
    part = ActorCriticPart(
        4, 2, agent=AGENT, encoding=EncodingConfig(), network=network, seeds=[3], periods_per_run=100
    )
    env = GymnasiumPart(4, 2, period=part.period)
    loop = ClosedLoop(part, env)
    env.bind([EnvLoop(ScriptedEnv(truncate), seed=0)])
    return part, env, loop


@pytest.mark.parametrize("truncate", [False, True])
def test_td_errors_bootstrap_only_on_truncation(truncate):
    part, _, loop = scripted_loop(truncate)
    head = part.head
    monitor = StateMonitor(
        head,
        ["delta", "value", "reward", "terminated", "decide", "clear"],
        record=True,
        clock=part.clock,
        when="start",
        order=ac_eqs.ORDER_HEAD + 1,
        name="td_monitor",
    )
    loop.network.add(monitor)
    loop.run(40)
    d = {
        k: np.asarray(getattr(monitor, k)[0])
        for k in ("delta", "value", "reward", "terminated", "decide", "clear")
    }
    gamma = AGENT.gamma
    checked_ends = 0
    for n in range(1, len(d["delta"])):
        if d["decide"][n - 1]:
            bootstrap = gamma * d["value"][n] * (1 - d["terminated"][n])
            expected = d["reward"][n] + bootstrap - d["value"][n - 1]
            assert d["delta"][n] == pytest.approx(expected, abs=1e-12), f"TD error at period {n}"
            if d["clear"][n]:
                checked_ends += 1
                assert d["terminated"][n] == (0 if truncate else 1)
                if not truncate:
                    assert d["delta"][n] == pytest.approx(d["reward"][n] - d["value"][n - 1], abs=1e-12)
        else:
            assert d["delta"][n] == 0.0, f"no decision before period {n}: the TD error must be 0"
    assert checked_ends >= 5, f"too few episode ends checked: {checked_ends}"
    assert np.all(d["decide"][d["clear"] == 1] == 0), "an episode-end period takes no decision"


def test_episode_end_clears_the_traces_and_the_network_state():
    part, _, loop = scripted_loop(truncate=False)
    e = part.eprop
    # After the clears of a period (before the environment steps): the state the period starts from.
    state = StateMonitor(
        e.recurrent,
        ["v", "zbar_out"],
        record=True,
        clock=part.clock,
        when="start",
        order=env_eqs.ORDER_LATCH,
        name="clear_monitor",
    )
    loop.network.add(state)
    cleared = 0
    for _ in range(30):
        loop.run(1)
        if part.head.clear[0]:
            cleared += 1
            for syn in part.td_synapses:
                assert np.all(syn.grad[:] == 0), f"{syn.name}: TD(lambda) traces must start each episode at 0"
            assert np.all(e.readout.grad_b[:] == 0), "bias traces must start each episode at 0"
            assert np.all(state.v[:, -1] == 0) and np.all(state.zbar_out[:, -1] == 0), (
                "neurons must start at rest"
            )
        elif part.head.decide[0]:
            assert np.any(e.syn_out.grad[:] != 0), "a decision must leave a trace"
    assert cleared >= 5, f"too few episode ends: {cleared}"


def test_td_update_and_learning_signals_follow_the_equations():
    """One decision period, against a NumPy transcription of nmbrl_brian/equations/actor_critic.py."""
    part, env, loop = scripted_loop(truncate=False, network=dataclasses.replace(SMALL, learning_rate=0.1))
    loop.run(2)  # intro and one decision: now a decision waits for its TD error
    e, head = part.eprop, part.head
    rng = np.random.default_rng(1)
    groups = {"in": e.syn_in, "rec": e.syn_rec, "out": e.syn_out}
    grads = {k: rng.normal(size=len(syn)) for k, syn in groups.items()}
    for k, syn in groups.items():
        syn.grad[:] = grads[k]
    w0 = {k: syn.w[:].copy() for k, syn in groups.items()}
    y = e.readout.y[:].copy()
    zbar_out = e.recurrent.zbar_out[:].copy()
    bbar = e.readout.bbar[0]
    reward, value_prev = float(env.env.reward[0]), float(head.value_prev[0])
    gl = AGENT.gamma * AGENT.trace_decay
    loop.run(1)
    delta = reward + AGENT.gamma * y[2] - value_prev
    assert head.delta[0] == pytest.approx(delta, abs=1e-12)
    for k in ("in", "rec"):
        eta = 0.1
        np.testing.assert_allclose(
            groups[k].w[:],
            w0[k] + eta * delta * grads[k],
            rtol=1e-12,
            atol=1e-14,
            err_msg=f"{k}: w += eta * delta * z",
        )
    np.testing.assert_allclose(
        e.syn_out.w[:],
        w0["out"] + delta * grads["out"],
        rtol=1e-12,
        atol=1e-14,
        err_msg="readouts: w += delta * z",
    )
    # The decision of this period: err_k written once, accumulated with zbar_out.
    pi = np.exp(y[:2] - y[:2].max())
    pi /= pi.sum()
    action = int(head.action[0])
    scale = 1.0 / (float(zbar_out @ zbar_out) + bbar**2 + 1)
    err = scale * np.array(
        [
            AGENT.actor_lr * (action == 0) - AGENT.actor_lr * pi[0],
            AGENT.actor_lr * (action == 1) - AGENT.actor_lr * pi[1],
            AGENT.critic_lr,
        ]
    )
    i, j = np.asarray(e.syn_out.i[:]), np.asarray(e.syn_out.j[:])
    expected = gl * grads["out"] + err[j] * zbar_out[i]
    np.testing.assert_allclose(
        e.syn_out.grad[:],
        expected,
        rtol=1e-10,
        atol=1e-14,
        err_msg="a decision adds err_k * zbar_out_j to the readout trace, once",
    )
    assert np.all(e.readout.err[:] == 0), "the learning signal must last one step"


# --------------------------------------------------------------------------------------
# The in-network softmax sampler
def test_softmax_sampler_matches_the_probabilities():
    brian2.prefs.codegen.target = "numpy"
    n_actions, periods = 3, 3000
    logits = np.array([0.4, -0.3, 1.1])
    clock = brian2.Clock(10 * ms, name="sampler_clock")
    uniforms = TimedArray(uniform_stream(123, 0, periods)[:, None], dt=10 * ms, name="sampler_uniforms")
    ns = {"gamma": 0.9, "period_dt": 10 * ms, uniforms.name: uniforms}
    source = NeuronGroup(1, "y0 : 1\ny1 : 1\ny2 : 1\nzero : integer", clock=clock, name="sampler_source")
    source.y0, source.y1, source.y2 = logits
    head = NeuronGroup(1, ac_eqs.head_equations(n_actions), namespace=ns, clock=clock, name="sampler_head")
    for k in range(n_actions):
        setattr(head, f"logit_{k}", linked_var(source, f"y{k}"))
    head.value = linked_var(source, "zero")
    head.bias_trace = linked_var(source, "zero")
    for var in ("reward", "terminated", "needs_reset", "episodes_done", "steps_done"):
        setattr(head, var, linked_var(source, "zero"))
    head.explore, head.episode_budget, head.step_budget = 1, 10**6, 10**6
    head.run_regularly(ac_eqs.head_step(n_actions, uniforms.name), when="start", name="sampler_step")
    monitor = StateMonitor(head, ["action", "partition"], record=True, when="end", name="sampler_monitor")
    net = Network(source, head, monitor)
    net.run(periods * 10 * ms)
    actions = np.asarray(monitor.action[0])
    p = np.exp(logits - logits.max())
    p /= p.sum()
    counts = np.bincount(actions, minlength=n_actions)
    chi2 = stats.chisquare(counts, p * periods)
    assert chi2.pvalue > 0.01, f"action counts {counts} vs expected {p * periods} (p={chi2.pvalue:.3g})"
    # Greedy mode picks the argmax.
    head.explore = 0
    net.run(10 * ms)
    assert int(head.action[0]) == int(np.argmax(logits))


# --------------------------------------------------------------------------------------
# Chunking, evaluation and checkpoints
@pytest.mark.parametrize("environment", ["gymnasium", "equations"])
def test_chunked_interaction_equals_one_long_run(environment):
    a, env_a = make_agent(seed=3, environment=environment)
    b, env_b = make_agent(seed=3, environment=environment)
    loop_a, loop_b = EnvLoop(env_a, seed=0), EnvLoop(env_b, seed=0)
    a.interact(loop_a, max_steps=300)
    for _ in range(3):
        b.interact(loop_b, max_steps=100)
    for name, w in a.weights().items():
        np.testing.assert_array_equal(w, b.weights()[name], err_msg=f"{name} differs after chunked runs")
    assert loop_a.env_steps == loop_b.env_steps == 300


def test_evaluation_does_not_change_training_state():
    agent, env = make_agent(seed=4, environment="equations")
    loop = EnvLoop(env, seed=0)
    agent.interact(loop, max_steps=200)
    before = agent.loop.state()
    returns = []
    agent.interact(
        EnvLoop(EnvironmentWrapper(), seed=99, on_episode_end=lambda r, n: returns.append(r)),
        max_episodes=3,
        explore=False,
        learn=False,
    )
    assert len(returns) >= 3, f"evaluation should finish 3 episodes, got {len(returns)}"
    after = agent.loop.state()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=f"evaluation changed {key}")
    assert len(agent.real_transitions) == 200, "evaluation steps are not real training transitions"
    agent.interact(loop, max_steps=100)  # training goes on counting every step after an evaluation
    assert loop.env_steps == 300 and len(agent.real_transitions) == 300
    steps_in_network = int(agent.loop.value(agent.env_part.env, "steps_done")[0])
    assert steps_in_network == 300, (
        f"the network took {steps_in_network} training steps, the loop counted 300"
    )


def test_evaluation_episodes_are_gymnasiums_seeded_episodes():
    """Greedy evaluation on the CartPole part gives the same returns as on gymnasium itself."""
    a, env_a = make_agent(seed=5, environment="gymnasium")
    b, env_b = make_agent(seed=5, environment="equations")
    ra, rb = [], []
    a.interact(
        EnvLoop(env_a, seed=50, on_episode_end=lambda r, n: ra.append(r)),
        max_episodes=4,
        explore=False,
        learn=False,
    )
    b.interact(
        EnvLoop(env_b, seed=50, on_episode_end=lambda r, n: rb.append(r)),
        max_episodes=4,
        explore=False,
        learn=False,
    )
    assert ra[:4] == rb[:4], f"evaluation returns differ: {ra} vs {rb}"


def test_state_dict_round_trip_continues_identically():
    a, env_a = make_agent(seed=5, environment="equations")
    loop = EnvLoop(env_a, seed=0)
    a.interact(loop, max_steps=150)
    state = a.state_dict()
    import copy

    loop_copy = copy.copy(loop)
    b, _ = make_agent(
        seed=5, environment="equations"
    )  # untrained: the learned weights must come from the state
    assert not np.array_equal(b.weights()["w_out"], a.weights()["w_out"])
    b.load_state_dict(state)
    a.interact(loop, max_steps=150)
    b.interact(loop_copy, max_steps=150)
    for name, w in a.weights().items():
        np.testing.assert_array_equal(w, b.weights()[name], err_msg=f"{name} differs after restoring state")
    assert len(b.real_transitions) == 300
    other, _ = make_agent(seed=11, environment="equations")
    with pytest.raises(ValueError, match="same connectivity"):
        other.load_state_dict(state)


def test_operation_counts_grow_with_activity():
    agent, env = make_agent(seed=6, environment="equations")
    agent.interact(EnvLoop(env, seed=0), max_steps=50)
    counts = agent.operation_counts()
    assert counts.spikes > 0 and counts.synaptic_events > counts.spikes, f"implausible counts {counts}"
    assert counts.neuron_updates >= 50 * 10 * (SMALL.n_recurrent + 3), "every neuron updates every step"
    assert counts.weight_updates > 0


def test_gymnasium_environment_is_refused_on_standalone_devices():
    with pytest.raises(ConfigError, match=r"^environment: expected 'equations' or 'auto'"):
        load_config(
            None, ["agent.kind=spiking_actor_critic", "device=cpp_standalone", "environment=gymnasium"]
        )
    with pytest.raises(ConfigError, match=r"^device: expected an environment written as Brian2 equations"):
        load_config(None, ["agent.kind=spiking_actor_critic", "device=cpp_standalone", "env_id=Acrobot-v1"])


@pytest.mark.slow
def test_short_training_beats_a_random_policy():
    config = load_config(CONFIGS / "cartpole_snn.toml")
    agent, env = make_agent(
        seed=0,
        network=config.network,
        environment="equations",
        actor_lr=config.agent.actor_lr,
        critic_lr=config.agent.critic_lr,
    )
    agent.interact(EnvLoop(env, seed=0), max_steps=10_000)
    returns = []
    agent.interact(
        EnvLoop(EnvironmentWrapper(), seed=10**6, on_episode_end=lambda r, n: returns.append(r)),
        max_episodes=10,
        explore=False,
        learn=False,
    )
    # A uniformly random policy averages about 22 steps on CartPole-v1.
    assert np.mean(returns[:10]) > 66, (
        f"after 10k steps the greedy return {np.mean(returns):.1f} is not 3x random"
    )


def test_direct_readout_learns_by_the_td_rule():
    """With network.direct_readout the inputs reach the readouts through weights that the TD rule
    updates like the recurrent readout weights (and the learning signal's norm counts them)."""
    part, env, loop = scripted_loop(truncate=False, network=dataclasses.replace(SMALL, direct_readout=True))
    direct = part.direct.synapses
    loop.run(2)  # intro and one decision: a TD error is pending
    rng = np.random.default_rng(4)
    grad = rng.normal(size=len(direct))
    direct.grad[:] = grad
    w0 = direct.w[:].copy()
    y_value, reward, value_prev = (
        part.eprop.readout.y[2],
        float(env.env.reward[0]),
        float(part.head.value_prev[0]),
    )
    xbar = part.eprop.inputs.zbar_out[:].copy()
    loop.run(1)
    delta = reward + AGENT.gamma * y_value - value_prev
    np.testing.assert_allclose(direct.w[:], w0 + delta * grad, rtol=1e-12, atol=1e-14)
    assert part.head.direct_norm[0] == pytest.approx(float(xbar @ xbar), rel=1e-12), (
        "the norm counts the inputs"
    )
    assert "w_direct" in part.weight_variables()


def test_operation_counts_per_phase_equal_hand_counts_exactly():
    """Real and evaluation phases, counted apart: spikes and synaptic events from the spike monitors
    and the actual out-degrees, neuron and trace updates per simulated step, weight updates per
    learning period; an evaluation adds to its own phase only and computes no traces."""
    agent, env = make_agent(seed=3, environment="equations")
    e = agent.part.eprop
    steps = agent.network_config.steps_per_env_step
    n_neurons = len(e.inputs) + len(e.recurrent) + len(e.readout)
    fan = {
        "in": np.bincount(np.asarray(e.syn_in.i[:]), minlength=len(e.inputs)),
        "rec": np.bincount(np.asarray(e.syn_rec.i[:]), minlength=len(e.recurrent))
        + np.bincount(np.asarray(e.syn_out.i[:]), minlength=len(e.recurrent)),
    }

    def spikes_now():
        return np.asarray(e.spikes_in.count[:]).copy(), np.asarray(e.spikes_rec.count[:]).copy()

    def hand(before, after, periods, learning):
        d_in, d_rec = after[0] - before[0], after[1] - before[1]
        traces = sum(len(s) for s in e.learning_synapses) + len(e.syn_out)
        learned = sum(len(s) for s in agent.part.td_synapses) + len(e.readout)
        return OperationCounts(
            spikes=int(d_in.sum() + d_rec.sum()),
            synaptic_events=int(d_in @ fan["in"] + d_rec @ fan["rec"]),
            neuron_updates=n_neurons * steps * periods,
            synapse_updates=traces * steps * periods if learning else 0,
            weight_updates=learned * periods if learning else 0,
        )

    start = spikes_now()
    agent.interact(EnvLoop(env, seed=0), max_steps=60)
    trained = spikes_now()
    real_periods = agent.periods_by_phase()["real"]
    assert real_periods >= 60, "every real step is a period (episode ends add one each)"
    expected_real = hand(start, trained, real_periods, learning=True)
    assert expected_real.spikes > 0
    assert agent.operation_counts_by_phase() == {"real": expected_real}

    # An evaluation: counted in its own phase; inference only (no trace or weight updates).
    marks = []
    original = agent.loop.run

    def run(periods, values=None, active=None):
        marks.append(spikes_now())
        records = original(periods, values, active=active)
        marks.append(spikes_now())
        return records

    agent.loop.run = run
    agent.interact(EnvLoop(EnvironmentWrapper(), seed=5), max_episodes=1, explore=False, learn=False)
    agent.loop.run = original
    eval_periods = agent.periods_by_phase()["evaluation"]
    expected_eval = OperationCounts()
    for before, after in zip(marks[::2], marks[1::2]):
        expected_eval = expected_eval + hand(before, after, 0, learning=False)
    expected_eval = dataclasses.replace(expected_eval, neuron_updates=n_neurons * steps * eval_periods)
    counts = agent.operation_counts_by_phase()
    assert counts["real"] == expected_real, "an evaluation must not add to the real phase"
    assert counts["evaluation"] == expected_eval
    assert expected_eval.spikes > 0 and eval_periods > 0


def test_event_driven_traces_are_counted_per_event_in_the_closed_loop():
    """In the actor-critic the learning signal is non-zero only at decisions, so event-driven
    traces (closed-form decay between events) perform fewer updates than activity-sparse ones
    on the same steps; the real phase's synapse updates are exactly the performed trace updates
    (the synapses' own counters) plus the readout synapses' per-step updates."""
    performed = {}
    for event_driven in (False, True):
        network = dataclasses.replace(SMALL, activity_sparse=True, event_driven_traces=event_driven)
        agent, env = make_agent(seed=3, network=network, environment="equations")
        e = agent.part.eprop
        agent.interact(EnvLoop(env, seed=0), max_steps=60)
        counters = sum(int(np.sum(s.n_trace_updates[:])) for s in e.learning_synapses)
        steps = agent.network_config.steps_per_env_step * agent.periods_by_phase()["real"]
        assert agent.operation_counts_by_phase()["real"].synapse_updates == counters + len(e.syn_out) * steps
        performed[event_driven] = counters
    assert 0 < performed[True] < performed[False], f"decay-only steps should cost nothing: {performed}"
