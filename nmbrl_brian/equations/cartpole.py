"""CartPole-v1 physics as Brian2 equations: an environment part that compiles standalone.

The cart-pole of Barto, Sutton & Anderson (1983), "Neuronlike adaptive elements that
can solve difficult learning control problems", IEEE SMC 13:834, integrated exactly
as gymnasium's ``CartPoleEnv`` does (explicit Euler, ``tau`` = 20 ms per step):

.. math::

    F &= (2a - 1)\\,F_{mag} \\\\
    T &= (F + m_p l \\dot\\theta^2 \\sin\\theta) / (m_c + m_p) \\\\
    \\ddot\\theta &= \\frac{g\\sin\\theta - T\\cos\\theta}
                     {l\\,(4/3 - m_p\\cos^2\\theta/(m_c + m_p))} \\\\
    \\ddot x &= T - m_p l\\,\\ddot\\theta\\cos\\theta / (m_c + m_p)

then ``x += tau*x_dot; x_dot += tau*x_acc; theta += tau*theta_dot; theta_dot += tau*theta_acc``.
A step is *terminated* when ``|x| > x_threshold`` or ``|theta| > theta_threshold`` and
*truncated* when the episode reaches ``max_episode_steps`` (as gymnasium's ``TimeLimit``,
truncation is reported even on a terminating step; the agent does not bootstrap then).

The group follows the port protocol of :mod:`nmbrl_brian.equations.environment`: once
per environment period it executes the agent's command (step with ``action``, reset,
or hold). A reset takes the next row of a table of initial states (a TimedArray filled
by the environment part, e.g. with the states gymnasium's ``reset(seed=...)`` gives, so
that seeded episodes are the same as gymnasium's). The observation port shows the state
rounded to single precision, exactly as gymnasium hands it to an agent.

One neuron of the group is one environment, so ``B`` copies are ``B`` independent
cart-poles. The physical constants are read from gymnasium's ``CartPoleEnv``
(:meth:`CartPoleParams.from_gymnasium`), never typed in twice. Per step the physics
matches gymnasium to rounding (about 4e-16 from the same state); over long episodes
the trajectories part ways as any chaotic system's do under 1-ulp differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from brian2 import Quantity, kilogram, meter, ms, second
from brian2.units.allunits import newton

#: Observation dimensions, in gymnasium's order.
STATE_VARIABLES = ("x", "x_dot", "theta", "theta_dot")

#: The cart-pole's state (one neuron of the ``env`` group per copy), beside the ports.
CARTPOLE_EQUATIONS = """
x : meter                      # cart position
x_dot : meter/second           # cart velocity
theta : 1                      # pole angle (radian)
theta_dot : 1/second           # pole angular velocity (radian/s)
"""

#: The physics of one step (temporaries only: the state is written by :func:`cartpole_step`).
CARTPOLE_DYNAMICS = """
force = (2*action - 1) * force_mag
temp = (force + polemass_length * theta_dot**2 * sin(theta)) / total_mass
theta_acc = (gravity * sin(theta) - cos(theta) * temp) / (pole_half_length * (4.0/3.0 - mass_pole * cos(theta)**2 / total_mass))
x_acc = temp - polemass_length * theta_acc * cos(theta) / total_mass
x_next = x + tau_env * x_dot
x_dot_next = x_dot + tau_env * x_acc
theta_next = theta + tau_env * theta_dot
theta_dot_next = theta_dot + tau_env * theta_acc
"""

#: Execute the command: step (physics), reset (row ``reset_row`` of ``{table}``) or hold.
_CARTPOLE_COMMAND = """
stepping = int(command == 1)
resetting = int(command == 2)
holding = 1 - stepping - resetting
x = holding*x + stepping*x_next + resetting*{table}(reset_row*period_dt, 4*copy + 0)*meter
x_dot = holding*x_dot + stepping*x_dot_next + resetting*{table}(reset_row*period_dt, 4*copy + 1)*meter/second
theta = holding*theta + stepping*theta_next + resetting*{table}(reset_row*period_dt, 4*copy + 2)
theta_dot = holding*theta_dot + stepping*theta_dot_next + resetting*{table}(reset_row*period_dt, 4*copy + 3)/second
failed = int(abs(x) > x_threshold or abs(theta) > theta_threshold)
terminated = holding*terminated + stepping*failed
truncated = holding*truncated + stepping*int(episode_steps + 1 >= max_episode_steps)
reward = holding*reward + stepping*1.0
needs_reset = holding*needs_reset + stepping*int(terminated == 1 or truncated == 1)
stepped = stepping
"""


def cartpole_step(table: str) -> str:
    """Abstract code of one period: the physics and the command (resets read TimedArray ``table``)."""
    return CARTPOLE_DYNAMICS + _CARTPOLE_COMMAND.format(table=table)


#: Added to the ``obs`` port group: the cart-pole state it shows.
OBS_LINKS = """
x_env : meter (linked)
x_dot_env : meter/second (linked)
theta_env : 1 (linked)
theta_dot_env : 1/second (linked)
"""

#: The observation, rounded to single precision like gymnasium's.
CARTPOLE_OBSERVE = (
    "obs = float32_round(int(dim == 0)*x_env/meter + int(dim == 1)*x_dot_env/(meter/second)"
    " + int(dim == 2)*theta_env + int(dim == 3)*theta_dot_env*second)"
)


#: The gymnasium tasks these equations are (their constants differ only in the time limit).
GYMNASIUM_IDS = ("CartPole-v0", "CartPole-v1")


def _quantity(value: Quantity):
    """A dataclass default for a Brian2 quantity (quantities are mutable arrays)."""
    return field(default_factory=lambda: value)


@dataclass(frozen=True)
class CartPoleParams:
    """Physical constants of CartPole-v1, with units."""

    gravity: Quantity = _quantity(9.8 * meter / second**2)
    """Gravitational acceleration."""
    mass_cart: Quantity = _quantity(1.0 * kilogram)
    """Mass of the cart."""
    mass_pole: Quantity = _quantity(0.1 * kilogram)
    """Mass of the pole."""
    pole_half_length: Quantity = _quantity(0.5 * meter)
    """Half the pole's length (gymnasium's ``length``)."""
    force_mag: Quantity = _quantity(10.0 * newton)
    """Magnitude of the push."""
    tau_env: Quantity = _quantity(20 * ms)
    """Time between two environment steps (gymnasium's ``tau``)."""
    x_threshold: Quantity = _quantity(2.4 * meter)
    """Episode terminates when the cart leaves [-x_threshold, x_threshold]."""
    theta_threshold: float = 0.20943951023931953
    """Episode terminates when |theta| exceeds this angle (radian, 12 degrees)."""
    max_episode_steps: int = 500
    """Time limit of CartPole-v1."""

    @classmethod
    def from_gymnasium(cls, env_id: str = "CartPole-v1") -> CartPoleParams:
        """Read every constant from gymnasium's environment so the two can never disagree."""
        import gymnasium as gym

        env = gym.make(env_id)
        u = env.unwrapped
        params = cls(
            gravity=u.gravity * meter / second**2,
            mass_cart=u.masscart * kilogram,
            mass_pole=u.masspole * kilogram,
            pole_half_length=u.length * meter,
            force_mag=u.force_mag * newton,
            tau_env=u.tau * second,
            x_threshold=u.x_threshold * meter,
            theta_threshold=float(u.theta_threshold_radians),
            max_episode_steps=int(env.spec.max_episode_steps),
        )
        env.close()
        return params

    def namespace(self) -> dict:
        """The constants as a Brian2 namespace, including the derived ones."""
        total_mass = self.mass_cart + self.mass_pole
        return {
            "gravity": self.gravity,
            "mass_pole": self.mass_pole,
            "total_mass": total_mass,
            "pole_half_length": self.pole_half_length,
            "polemass_length": self.mass_pole * self.pole_half_length,
            "force_mag": self.force_mag,
            "tau_env": self.tau_env,
            "x_threshold": self.x_threshold,
            "theta_threshold": self.theta_threshold,
            "max_episode_steps": self.max_episode_steps,
        }
