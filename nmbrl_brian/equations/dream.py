"""A dream: an environment whose steps come from a model of the real one, as Brian2 code.

The dream offers the environment ports of :mod:`nmbrl_brian.equations.environment`; its
state *is* its observation (one neuron of the ``obs`` group per copy and dimension). A
model (the *predictor*) writes, before the step, the next observation ``obs_next`` for
the action the agent has just chosen, and the reward ``reward_next``. Then, once per
period:

.. math::

    s_{n+1} = \\begin{cases} \\mathrm{clip}(\\hat s(s_n, a_n), s^{low}, s^{high}) & \\text{step} \\\\
        s^{start}_k & \\text{reset (row } k \\text{ of a table of real states)} \\\\
        s_n & \\text{hold} \\end{cases}
    \\qquad
    \\mathrm{terminated}_{n+1} = \\mathrm{done}(s_{n+1}), \\quad
    \\mathrm{truncated}_{n+1} = [\\text{the episode reached } H \\text{ steps}]

where :math:`[s^{low}, s^{high}]` is the task's observation space (a model's prediction is kept
within the states the real environment can be in: Acrobot's velocities are bounded and its cosines
and sines lie in [-1, 1]; a rollout that drifts cannot grow without bound), ``done`` is the task's
termination rule written as Brian2 code
(:mod:`nmbrl_brian.world_models.termination`) or a learned readout, and ``H`` is the
dream horizon. Dreams start from real states the agent has visited, drawn by the
dream part into a reset table before every run.

Predictors (see :mod:`nmbrl_brian.parts.dream`): the spiking world model (the prediction
it latched for each action at the end of the previous period), a linear model on
standardised features, or the CartPole equations themselves (a perfect model).
"""

from __future__ import annotations

#: Added to the ``obs`` port group of a dream.
DREAM_OBS_EQUATIONS = """
obs_next : 1                   # the model's next observation for the chosen action (written by the predictor)
command : integer (linked)     # the env group's command
action : integer (linked)      # the agent's action
reset_row : integer (linked)   # the env group's row of the start table
obs_low : 1 (constant)         # the observation space's bounds of this dimension
obs_high : 1 (constant)
"""

#: Added to the ``env`` group of a dream.
DREAM_ENV_EQUATIONS = """
reward_next : 1                # the model's reward for the chosen action (written by the predictor)
failed_next : 1                # learned termination (0..1) for the chosen action, if the model learns it
"""


def dream_obs_step(table: str) -> str:
    """Abstract code of the step of a dream's state (``{table}``: TimedArray of start states)."""
    return f"""
stepping = int(command == 1)
resetting = int(command == 2)
obs = (1 - stepping - resetting)*obs + stepping*clip(obs_next, obs_low, obs_high) + resetting*{table}(reset_row*period_dt, copy*obs_dim + dim)
"""


#: Added to the ``env`` group of a dream whose reward is shaped (``agent.reward_shaping``).
DREAM_SHAPING_EQUATIONS = """
potential : 1                  # the task's potential of the current state
shaping_scale : 1 (constant)   # k of the shaping term
shaping_gamma : 1 (constant)   # the agent's discount
"""


def dream_env_step(termination: str | None, reward: str | None = None, potential: str | None = None) -> str:
    """Abstract code of a dream's ports after the step: ``termination`` is an ``int(...)`` expression
    of ``s_0, s_1, ...`` (the task's rule), or None for the learned readout ``failed_next > 0.5``;
    ``reward`` an expression of ``failed`` and ``s_0, s_1, ...`` (the task's reward rule), or None
    for the model's ``reward_next``; ``potential`` an expression :math:`\\Phi` of ``s_0, s_1, ...``
    whose potential-based shaping term (Ng, Harada and Russell 1999, *Policy invariance under
    reward transformations*) is added to each dreamed step's reward:

    .. math::

        r_{n+1} = r^{task}_{n+1} + k\\,\\bigl(\\gamma\\,\\Phi(s_{n+1}) - \\Phi(s_n)\\bigr)

    with ``k`` = ``shaping_scale`` and :math:`\\gamma` = ``shaping_gamma``, the agent's discount.
    The terms telescope: an episode's discounted return changes by
    :math:`k\\,(\\gamma^T \\Phi(s_T) - \\Phi(s_0))`, the same for every policy but for the end state
    (truncated episodes bootstrap from the value, which absorbs :math:`\\Phi(s_T)`), so the best
    policy of the task stays the best. It gives a dream that never reaches the goal a signal: on
    Acrobot, :math:`\\Phi` is the free end's height. None: no shaping."""
    failed = termination if termination is not None else "int(failed_next > 0.5)"
    reward = f"({reward})" if reward is not None else "reward_next"
    if potential is None:
        shaping = ""
    else:
        reward = f"({reward} + shaping_scale*(shaping_gamma*({potential}) - potential))"
        shaping = f"potential = holding*potential + (1 - holding)*({potential})\n"
    return (
        f"""
stepping = int(command == 1)
resetting = int(command == 2)
holding = 1 - stepping - resetting
failed = {failed}
terminated = holding*terminated + stepping*failed
truncated = holding*truncated + stepping*int(episode_steps + 1 >= horizon)
reward = holding*reward + stepping*{reward}
needs_reset = holding*needs_reset + stepping*int(terminated == 1 or truncated == 1)
stepped = stepping
"""
        + shaping
    )


def state_links(obs_dim: int) -> str:
    """Linked variables ``s_0 .. s_{D-1}``: the components of one copy's observation."""
    return "".join(f"s_{d} : 1 (linked)   # observation component {d} of this copy\n" for d in range(obs_dim))


def select_by_action(values: list[str]) -> str:
    """``sum_a int(action == a) * values[a]``: the prediction for the chosen action."""
    return " + ".join(f"int(action == {a})*({v})" for a, v in enumerate(values))
