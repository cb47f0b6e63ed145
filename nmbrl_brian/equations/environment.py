"""The environment side of a closed loop: the ports every environment part offers.

An agent part never knows which environment it is wired to: CartPole written as
Brian2 equations (:mod:`nmbrl_brian.equations.cartpole`), a gymnasium environment
behind one network operation (runtime only), or the world model's dream. All of them
offer the same *ports*, plain state variables on two groups that tick once per
environment period:

``env`` group (one neuron per copy of the loop)
    reads ``command`` and ``action`` from the agent (linked variables) and offers
    ``reward``, ``terminated``, ``truncated`` and ``needs_reset`` (the last step ended
    the episode, or no episode has started: the next command must be a reset).
``obs`` group (one neuron per copy and observation dimension, ``dim`` and ``copy``)
    offers ``obs``, the observation, and ``obs_prev``, the observation before this
    period's step (so that a monitor sees whole transitions).

The protocol, once per period in the ``start`` slot, after the agent's head has written
``command`` (order :data:`ORDER_LATCH` and on):

1. the obs port latches ``obs_prev = obs``;
2. the environment executes the command: ``1`` takes one step with ``action`` and sets
   ``reward, terminated, truncated, needs_reset`` and ``stepped = 1``; ``2`` starts a
   new episode (``reward = terminated = truncated = needs_reset = 0``); ``0`` holds;
3. the obs port shows the new observation; the generic bookkeeping below counts steps,
   returns and episodes.

Two events of the ``env`` group feed the monitors of the loop: ``transition``
(``stepped == 1``: one real or dreamed step) and ``episode_end`` (a step that ended an
episode, with its return and length).
"""

from __future__ import annotations

import numpy as np
from brian2 import check_units, implementation

#: Slot orders at the start of a period, after the agent (see actor_critic): a switch
#: between environments routes the command, the environment latches, steps, shows the
#: observation and counts, the switch passes the observation on, the agent encodes.
#: The switch passes the other ports on at the very start of the next period
#: (:data:`ORDER_SWITCH_PORTS`, before the agent's head reads them), so that values written
#: between runs (a phase's ``use_dream``, an environment's ``needs_reset = 1``) reach the
#: head in the period they are written for, not one period late.
ORDER_SWITCH_PORTS = -1
ORDER_ROUTE = 4
ORDER_LATCH = 5
ORDER_STEP = 6
ORDER_OBSERVE = 7
ORDER_BOOKKEEPING = 8
ORDER_MERGE = 9
ORDER_ENCODE = 10

#: Commands of the agent's head.
HOLD, STEP, RESET = 0, 1, 2

#: Ports and bookkeeping of the ``env`` group (environment parts add their own state).
ENV_PORT_EQUATIONS = """
command : integer (linked)     # from the agent: 0 hold, 1 step with action, 2 reset
action : integer (linked)      # from the agent: the action of this step
reward : 1                     # reward of the last step
terminated : integer           # the last step reached a terminal state (no bootstrap)
truncated : integer            # the last step hit the time limit (bootstrap)
needs_reset : integer          # the episode is over or not started: the next command must be a reset
stepped : integer              # 1 if this period took a step
episode_return : 1             # return of the current episode so far (of the ended one at an episode end)
episode_steps : integer        # steps of the current episode so far
episodes_done : integer        # episodes finished
steps_done : integer           # steps taken
resets_done : integer          # episodes started
reset_row : integer            # resets since the start of this run (row of a reset table)
copy : integer (constant)      # copy of the loop
"""

#: The ``obs`` port group.
OBS_PORT_EQUATIONS = """
obs : 1                        # observation of this copy and dimension
obs_prev : 1                   # observation before this period's step
dim : integer (constant)       # observation dimension
copy : integer (constant)      # copy of the loop
"""

#: Latch the observation before the environment steps.
LATCH_OBS = "obs_prev = obs"

#: Counting, the same for every environment part (after the step).
BOOKKEEPING = """
resetting = int(command == 2)
episode_steps = (episode_steps + stepped)*(1 - resetting)
episode_return = (episode_return + stepped*reward)*(1 - resetting)
episodes_done += stepped*needs_reset
steps_done += stepped
resets_done += resetting
reset_row += resetting
"""

#: A switch between two environments (``real_*`` and ``dream_*``): the ports it passes on, with their units.
SWITCHED_PORTS = {
    "reward": "1",
    "terminated": "integer",
    "truncated": "integer",
    "needs_reset": "integer",
    "episodes_done": "integer",
    "steps_done": "integer",
}
SWITCH_EQUATIONS = """
command : integer (linked)     # from the agent
use_dream : integer            # 1: the dream gets the commands and shows its ports; 0: the real environment
command_real : integer         # the command as the real environment sees it (0: hold)
command_dream : integer        # the command as the dream sees it
""" + "".join(
    f"{port} : {unit}\nreal_{port} : {unit} (linked)\ndream_{port} : {unit} (linked)\n"
    for port, unit in SWITCHED_PORTS.items()
)
SWITCH_ROUTE = """
command_real = command*(1 - use_dream)
command_dream = command*use_dream
"""
SWITCH_MERGE = "".join(
    f"{port} = int(choose(use_dream, dream_{port}, real_{port}))\n"
    if unit == "integer"
    else f"{port} = choose(use_dream, dream_{port}, real_{port})\n"
    for port, unit in SWITCHED_PORTS.items()
)
SWITCH_OBS_EQUATIONS = """
obs : 1                        # the observation of the environment in use
real_obs : 1 (linked)
dream_obs : 1 (linked)
use_dream : integer (linked)
"""
#: ``choose`` (not ``use_dream*dream + (1 - use_dream)*real``): a NaN of the environment not in
#: use (e.g. an idle dream under standalone, where every part computes) must not reach the agent.
SWITCH_MERGE_OBS = "obs = choose(use_dream, dream_obs, real_obs)"

#: Events of the ``env`` group (checked once per period, in the ``thresholds`` slot).
ENV_EVENTS = {
    "transition": "stepped == 1",
    "episode_end": "stepped == 1 and needs_reset == 1",
}


@implementation("cuda", "__host__ __device__ double float32_round(double x) { return (double)(float)x; }")
@implementation("cpp", "double float32_round(double x) { return (double)(float)x; }")
@implementation(
    "cython",
    """
cdef double float32_round(double x):
    return <double>(<float>x)
""",
)
@check_units(x=1, result=1)
def float32_round(x):
    """``x`` rounded to single precision, as gymnasium hands out observations.

    A Brian2 function with numpy, cython, C++ and CUDA implementations.
    """
    return np.asarray(x, dtype=np.float32).astype(np.float64)


@implementation(
    "cuda", "__host__ __device__ double choose(double c, double a, double b) { return c != 0 ? a : b; }"
)
@implementation("cpp", "double choose(double c, double a, double b) { return c != 0 ? a : b; }")
@implementation(
    "cython",
    """
cdef double choose(double c, double a, double b):
    return a if c != 0 else b
""",
)
@check_units(c=1, a=1, b=1, result=1)
def choose(c, a, b):
    """``a`` where ``c`` is nonzero, else ``b``: a selection that never mixes in the other value
    (``c*a + (1 - c)*b`` is NaN when the value not selected is NaN).

    A Brian2 function with numpy, cython, C++ and CUDA implementations.
    """
    return np.where(np.asarray(c) != 0, a, b).astype(np.float64)
