"""Raster capture: one greedy episode of a spiking agent with every spike, readout and port recorded."""

from __future__ import annotations

import numpy as np

from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.env_loop import EnvLoop


def record_episode(agent, seed: int, *, max_steps: int = 200, dream: bool = False) -> dict[str, np.ndarray]:
    """One greedy episode of ``agent`` (a spiking actor-critic) with monitors on (runtime mode).

    The loop's state is stored before and restored after, so training never sees it.

    Parameters
    ----------
    agent : SpikingActorCritic
        The agent (its loop must run in runtime mode).
    seed : int
        Reset seed of the real episode (a dream starts from the first real start state).
    max_steps : int
        The episode is cut after this many steps.
    dream : bool
        Record a dreamed episode (model-based agents) instead of a real one.

    Returns
    -------
    dict
        ``input_t``/``input_i`` and ``recurrent_t``/``recurrent_i`` (spike times in ms and
        neuron indices), ``readout_t`` (ms) and ``readout_y`` (readouts x steps), ``period_t``
        (ms), ``obs`` (periods x obs_dim), ``action``, ``decide``, ``reward`` and ``stepped``
        (per period), and the readout names.
    """
    from brian2 import SpikeMonitor, StateMonitor, ms

    loop = agent.loop
    if loop.standalone:
        raise ValueError("record_episode: runtime mode only (load the run's state into a runtime agent)")
    env = agent.dream if dream else agent.env_part
    e, head, part = agent.part.eprop, agent.part.head, agent.part
    monitors = [
        SpikeMonitor(e.inputs, name="record_input_spikes"),
        SpikeMonitor(e.recurrent, name="record_recurrent_spikes"),
        StateMonitor(e.readout, "y", record=True, when="end", name="record_readouts"),
        StateMonitor(env.obs_port, "obs", record=True, clock=part.clock, when="end", name="record_obs"),
        StateMonitor(head, ["action", "decide"], record=True, clock=part.clock, when="end", name="record_head"),
        StateMonitor(env.env, ["reward", "stepped"], record=True, clock=part.clock, when="end", name="record_env"),
    ]
    loop.store("before_record")
    active = list(loop.parts)
    values = {
        **part.mode(learning=False, explore=False, episode_budget=1, step_budget=max_steps),
        **part.fresh_episode(),
        **env.restart(),
    }
    if dream:
        values.update(agent.switch.select(dream=True))
        values.update(agent.model_values())
        agent.dream.set_start_states(agent.real_transitions.obs[:1])
    else:
        values.update(agent.real_values())
        agent.attach(EnvLoop(EnvironmentWrapper(agent.env_id), seed=seed))
    start_t = float(loop.network.t / ms)
    loop.network.add(*monitors)
    try:
        loop.run(max_steps + 2, values, active=active)
        spikes_in, spikes_rec, readouts, obs, heads, envs = monitors
        return {
            "input_t": np.asarray(spikes_in.t / ms) - start_t,
            "input_i": np.asarray(spikes_in.i),
            "recurrent_t": np.asarray(spikes_rec.t / ms) - start_t,
            "recurrent_i": np.asarray(spikes_rec.i),
            "readout_t": np.asarray(readouts.t / ms) - start_t,
            "readout_y": np.asarray(readouts.y),
            "period_t": np.asarray(obs.t / ms) - start_t,
            "obs": np.asarray(obs.obs).T,
            "action": np.asarray(heads.action[0]),
            "decide": np.asarray(heads.decide[0]),
            "reward": np.asarray(envs.reward[0]),
            "stepped": np.asarray(envs.stepped[0]),
            "readout_names": [f"logit {k}" for k in range(agent.n_actions)] + ["value"],
            "n_inputs": len(e.inputs),
            "n_recurrent": len(e.recurrent),
        }
    finally:
        loop.network.remove(*monitors)
        loop.restore("before_record")
        if agent.training_loop is not None:
            agent.attach(agent.training_loop)
