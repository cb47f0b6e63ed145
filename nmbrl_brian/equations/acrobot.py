"""Acrobot-v1's physics as Brian2 code: the dream's perfect model of Acrobot (``model_based.model = "perfect"``).

Gymnasium's Acrobot (Sutton and Barto's book dynamics, its default ``book_or_nips = "book"``) has
angles :math:`\\theta_1, \\theta_2`, angular velocities :math:`\\omega_1, \\omega_2` and a torque
:math:`a \\in \\{-1, 0, 1\\}` (actions 0, 1, 2) on the joint between the links. With
:math:`m_1 = m_2` link masses, :math:`l_1` the first link's length, :math:`l_{c1}, l_{c2}` the
positions of the centres of mass, :math:`I_1 = I_2` the moments of inertia and :math:`g = 9.8`:

.. math::

    d_1 &= m_1 l_{c1}^2 + m_2 (l_1^2 + l_{c2}^2 + 2 l_1 l_{c2} \\cos\\theta_2) + I_1 + I_2 \\\\
    d_2 &= m_2 (l_{c2}^2 + l_1 l_{c2} \\cos\\theta_2) + I_2 \\\\
    \\phi_2 &= m_2 l_{c2} g \\sin(\\theta_1 + \\theta_2) \\\\
    \\phi_1 &= -m_2 l_1 l_{c2} \\omega_2^2 \\sin\\theta_2 - 2 m_2 l_1 l_{c2} \\omega_2 \\omega_1 \\sin\\theta_2
        + (m_1 l_{c1} + m_2 l_1) g \\sin\\theta_1 + \\phi_2 \\\\
    \\dot\\omega_2 &= \\frac{a + \\frac{d_2}{d_1}\\phi_1 - m_2 l_1 l_{c2} \\omega_1^2 \\sin\\theta_2 - \\phi_2}
        {m_2 l_{c2}^2 + I_2 - d_2^2 / d_1} \\\\
    \\dot\\omega_1 &= -\\frac{d_2 \\dot\\omega_2 + \\phi_1}{d_1}

(gymnasium writes :math:`\\cos(\\theta - \\pi/2)` for :math:`\\sin\\theta`), integrated over one step
of :math:`h = 0.2` s by one classical Runge-Kutta step, as gymnasium's ``rk4`` does:

.. math::

    y_{n+1} = y_n + \\tfrac{h}{6}(k_1 + 2k_2 + 2k_3 + k_4), \\quad
    k_1 = f(y_n),\\ k_2 = f(y_n + \\tfrac{h}{2}k_1),\\ k_3 = f(y_n + \\tfrac{h}{2}k_2),\\ k_4 = f(y_n + h k_3)

then the velocities are clipped to :math:`\\pm 4\\pi` and :math:`\\pm 9\\pi` (the dream clips every
prediction to the observation space, which has these bounds).

The observation is :math:`(\\cos\\theta_1, \\sin\\theta_1, \\cos\\theta_2, \\sin\\theta_2, \\omega_1,
\\omega_2)`: the code below never forms an angle. A stage's angles are the observed ones turned by
an offset :math:`\\delta` (``cos(t + d) = cos t cos d - sin t sin d``, ``sin(t + d) = sin t cos d
+ cos t sin d``), and the step turns them by :math:`\\tfrac{h}{6}(\\omega^{(1)} + 2\\omega^{(2)} +
2\\omega^{(3)} + \\omega^{(4)})`, so Brian2 needs no ``arctan2``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``(stage, angle offset of link 1, of link 2, velocity of link 1, of link 2)``: where each
#: Runge-Kutta stage evaluates the derivatives (``s_4``, ``s_5``: the observed velocities).
_STAGES = (
    ("1", "0.0", "0.0", "s_4", "s_5"),
    ("2", "0.5*h_env*w1_1", "0.5*h_env*w2_1", "s_4 + 0.5*h_env*a1_1", "s_5 + 0.5*h_env*a2_1"),
    ("3", "0.5*h_env*w1_2", "0.5*h_env*w2_2", "s_4 + 0.5*h_env*a1_2", "s_5 + 0.5*h_env*a2_2"),
    ("4", "h_env*w1_3", "h_env*w2_3", "s_4 + h_env*a1_3", "s_5 + h_env*a2_3"),
)

#: The derivatives at one stage ``{k}``: the turned cosines and sines, then the book dynamics.
_DERIVATIVES = """
c1_{k} = s_0*cos({d1}) - s_1*sin({d1})
s1_{k} = s_1*cos({d1}) + s_0*sin({d1})
c2_{k} = s_2*cos({d2}) - s_3*sin({d2})
s2_{k} = s_3*cos({d2}) + s_2*sin({d2})
w1_{k} = {w1}
w2_{k} = {w2}
d1_{k} = m1*lc1**2 + m2*(l1**2 + lc2**2 + 2*l1*lc2*c2_{k}) + moi1 + moi2
d2_{k} = m2*(lc2**2 + l1*lc2*c2_{k}) + moi2
phi2_{k} = m2*lc2*g_env*(s1_{k}*c2_{k} + c1_{k}*s2_{k})
phi1_{k} = -m2*l1*lc2*w2_{k}**2*s2_{k} - 2*m2*l1*lc2*w2_{k}*w1_{k}*s2_{k} + (m1*lc1 + m2*l1)*g_env*s1_{k} + phi2_{k}
a2_{k} = (torque + d2_{k}/d1_{k}*phi1_{k} - m2*l1*lc2*w1_{k}**2*s2_{k} - phi2_{k}) / (m2*lc2**2 + moi2 - d2_{k}**2/d1_{k})
a1_{k} = -(d2_{k}*a2_{k} + phi1_{k}) / d1_{k}
"""

#: The step from the stages: the angles' turn and the new velocities, then each observed dimension.
_STEP = """
turn1 = h_env/6.0*(w1_1 + 2*w1_2 + 2*w1_3 + w1_4)
turn2 = h_env/6.0*(w2_1 + 2*w2_2 + 2*w2_3 + w2_4)
w1_next = s_4 + h_env/6.0*(a1_1 + 2*a1_2 + 2*a1_3 + a1_4)
w2_next = s_5 + h_env/6.0*(a2_1 + 2*a2_2 + 2*a2_3 + a2_4)
obs_next = int(dim == 0)*(s_0*cos(turn1) - s_1*sin(turn1)) + int(dim == 1)*(s_1*cos(turn1) + s_0*sin(turn1)) + int(dim == 2)*(s_2*cos(turn2) - s_3*sin(turn2)) + int(dim == 3)*(s_3*cos(turn2) + s_2*sin(turn2)) + int(dim == 4)*w1_next + int(dim == 5)*w2_next
"""


def acrobot_prediction() -> str:
    """Abstract code writing ``obs_next``, the next observation of dimension ``dim``, from the
    observation ``s_0 .. s_5`` and ``action`` (torque ``action - 1``): one Runge-Kutta step."""
    stages = "".join(_DERIVATIVES.format(k=k, d1=d1, d2=d2, w1=w1, w2=w2) for k, d1, d2, w1, w2 in _STAGES)
    return "torque = action - 1.0\n" + stages + _STEP


@dataclass(frozen=True)
class AcrobotParams:
    """Acrobot-v1's constants, read from gymnasium's environment (:meth:`from_gymnasium`)."""

    m1: float = 1.0
    """Mass of link 1 (kg)."""
    m2: float = 1.0
    """Mass of link 2 (kg)."""
    l1: float = 1.0
    """Length of link 1 (m)."""
    lc1: float = 0.5
    """Position of link 1's centre of mass (m)."""
    lc2: float = 0.5
    """Position of link 2's centre of mass (m)."""
    moi: float = 1.0
    """Moment of inertia of either link."""
    g: float = 9.8
    """Gravity (m/s², fixed in gymnasium's ``_dsdt``)."""
    dt: float = 0.2
    """One step (s)."""

    @classmethod
    def from_gymnasium(cls, env_id: str = "Acrobot-v1") -> AcrobotParams:
        """The constants of ``gym.make(env_id).unwrapped`` (the book dynamics only)."""
        import gymnasium as gym

        env = gym.make(env_id).unwrapped
        try:
            if env.book_or_nips != "book" or env.torque_noise_max > 0:
                raise ValueError(f"{env_id}: only the book dynamics without torque noise are written out")
            return cls(
                m1=env.LINK_MASS_1,
                m2=env.LINK_MASS_2,
                l1=env.LINK_LENGTH_1,
                lc1=env.LINK_COM_POS_1,
                lc2=env.LINK_COM_POS_2,
                moi=env.LINK_MOI,
                dt=env.dt,
            )
        finally:
            env.close()

    def namespace(self) -> dict:
        """The constants under the names of :func:`acrobot_prediction`."""
        return {
            "m1": self.m1,
            "m2": self.m2,
            "l1": self.l1,
            "lc1": self.lc1,
            "lc2": self.lc2,
            "moi1": self.moi,
            "moi2": self.moi,
            "g_env": self.g,
            "h_env": self.dt,
        }
