"""The closed loop reads monitor events in brian2's order whatever order the device recorded them in.

brian2cuda's threshold kernel claims places in the event space with ``atomicAdd``, so the events
of one time step reach an ``EventMonitor`` in the order the GPU threads ran, not by neuron index
as in brian2. :meth:`ClosedLoop._collect` pairs the ``d`` observation events of a transition with
that transition by position, so an unordered step would pair one copy's action with another
copy's (or a mix of) observations. No GPU needed: the monitors here hold events in a
GPU-like order.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from nmbrl_brian.loop import ClosedLoop


def _monitor(name: str, t: list[float], i: list[int], **values) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, t_=np.asarray(t), i=np.asarray(i), **{k: np.asarray(v) for k, v in values.items()}
    )


def test_collect_pairs_transitions_and_observations_when_events_come_unordered():
    copies, d, steps = 3, 2, 2
    scrambled_copies = [[2, 0, 1], [1, 2, 0]]  # per step, as threads might claim them
    tr_t, tr_i, action = [], [], []
    ob_t, ob_i, obs = [], [], []
    for step in range(steps):
        for c in scrambled_copies[step]:
            tr_t.append(step * 0.01)
            tr_i.append(c)
            action.append(c % 2)
        neurons = [c * d + k for c in scrambled_copies[step][::-1] for k in range(d)][::-1]
        for n in neurons:
            ob_t.append(step * 0.01)
            ob_i.append(n)
            obs.append(100 * step + 10 * (n // d) + n % d)  # step, copy, dimension
    env = SimpleNamespace(
        obs_dim=d,
        transitions=_monitor(
            "tr", tr_t, tr_i, action=action, reward=np.ones(len(tr_i)), terminated=[0] * 6, truncated=[0] * 6
        ),
        observed=_monitor("ob", ob_t, ob_i, obs_prev=np.asarray(obs) - 1, obs=obs),
        episodes=_monitor("ep", [0.01, 0.0], [1, 0], episode_return=[5.0, 7.0], episode_steps=[5, 7]),
    )
    loop = SimpleNamespace(standalone=True, _read={})
    loop._new = lambda monitor, names: ClosedLoop._new(loop, monitor, names)

    record = ClosedLoop._collect(loop, env)

    assert list(record.copy) == [0, 1, 2, 0, 1, 2], "transitions should come in (time, copy) order"
    expected = np.array(
        [[100 * s + 10 * c + k for k in range(d)] for s in range(steps) for c in range(copies)]
    )
    assert np.array_equal(record.next_obs, expected), (
        f"observations paired with the wrong copy:\n{record.next_obs}"
    )
    assert np.array_equal(record.obs, expected - 1)
    assert list(record.action) == [c % 2 for c in record.copy], "actions moved with their copy"
    assert list(record.episode_copy) == [0, 1] and list(record.episode_return) == [7.0, 5.0]
