"""CartPole-v1 physics as Brian2 equations, so a closed loop can compile standalone.

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
An episode terminates when ``|x| > x_threshold`` or ``|theta| > theta_threshold`` and
is truncated after ``max_episode_steps``; a finished episode restarts from a state
drawn uniformly from ``[-0.05, 0.05]`` per variable (Brian2's ``rand()``).

One neuron of the group is one environment, so ``NeuronGroup(B, ...)`` is a batch of
B independent cart-poles. The physical constants are read from gymnasium's
``CartPoleEnv`` (:meth:`CartPoleParams.from_gymnasium`), never typed in twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from brian2 import NeuronGroup, Quantity, kilogram, meter, ms, second
from brian2.units.allunits import newton

#: State and bookkeeping variables of one cart-pole (one neuron of the group).
CARTPOLE_EQUATIONS = """
x : meter                      # cart position
x_dot : meter/second           # cart velocity
theta : 1                      # pole angle (radian)
theta_dot : 1/second           # pole angular velocity (radian/s)
action : integer               # 0 pushes left, 1 pushes right; written by the agent
reward : 1                     # reward of the last step
terminated : integer           # 1 if the last step ended the episode in a terminal state
truncated : integer            # 1 if the last step hit the time limit
episode_steps : integer        # steps taken in the current episode
episodes_done : integer        # episodes finished so far
"""

#: One environment step, run by ``run_regularly`` every ``tau_env``. Names on the
#: left that are not variables (force, temp, ...) are temporaries.
CARTPOLE_STEP = """
force = (2*action - 1) * force_mag
temp = (force + polemass_length * theta_dot**2 * sin(theta)) / total_mass
theta_acc = (gravity * sin(theta) - cos(theta) * temp) / (pole_half_length * (4.0/3.0 - mass_pole * cos(theta)**2 / total_mass))
x_acc = temp - polemass_length * theta_acc * cos(theta) / total_mass
x = x + tau_env * x_dot
x_dot = x_dot + tau_env * x_acc
theta = theta + tau_env * theta_dot
theta_dot = theta_dot + tau_env * theta_acc
episode_steps += 1
terminated = int(abs(x) > x_threshold or abs(theta) > theta_threshold)
truncated = int(terminated == 0 and episode_steps >= max_episode_steps)
reward = 1.0
"""

#: Restart finished episodes (run right after :data:`CARTPOLE_STEP` when auto-reset is on).
CARTPOLE_AUTO_RESET = """
done = int(terminated == 1 or truncated == 1)
episodes_done += done
x = x*(1 - done) + done*(rand()*0.1 - 0.05)*meter
x_dot = x_dot*(1 - done) + done*(rand()*0.1 - 0.05)*meter/second
theta = theta*(1 - done) + done*(rand()*0.1 - 0.05)
theta_dot = theta_dot*(1 - done) + done*(rand()*0.1 - 0.05)/second
episode_steps = episode_steps*(1 - done)
"""


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


def build_cartpole_group(
    n_envs: int = 1,
    params: CartPoleParams | None = None,
    *,
    auto_reset: bool = True,
    name: str = "cartpole",
) -> NeuronGroup:
    """A group of ``n_envs`` cart-poles stepped by ``run_regularly`` every ``params.tau_env``.

    Parameters
    ----------
    n_envs : int
        Number of independent environments (one per neuron).
    params : CartPoleParams, optional
        Physical constants; read from gymnasium if None.
    auto_reset : bool
        Restart finished episodes from a random state inside the same step.
    name : str
        Name of the group; the step operation is ``<name>_step``.

    Returns
    -------
    brian2.NeuronGroup
        Variables ``x, x_dot, theta, theta_dot, action, reward, terminated,
        truncated, episode_steps, episodes_done``; initial state drawn like
        gymnasium's reset. Its step operation is in ``group.contained_objects``.
    """
    params = params or CartPoleParams.from_gymnasium()
    group = NeuronGroup(n_envs, CARTPOLE_EQUATIONS, namespace=params.namespace(), name=name)
    group.x = "(rand()*0.1 - 0.05)*meter"
    group.x_dot = "(rand()*0.1 - 0.05)*meter/second"
    group.theta = "rand()*0.1 - 0.05"
    group.theta_dot = "(rand()*0.1 - 0.05)/second"
    code = CARTPOLE_STEP + (CARTPOLE_AUTO_RESET if auto_reset else "")
    group.run_regularly(code, dt=params.tau_env, when="start", name=f"{name}_step")
    return group
