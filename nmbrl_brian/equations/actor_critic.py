r"""Reward-based e-prop actor-critic, as Brian2 code run once per environment step.

Reward-based e-prop (Bellec et al. 2020, "A solution to the learning dilemma for
recurrent networks of spiking neurons", Nat. Commun. 11:3625, Methods "Reward-based
e-prop") reuses the supervised machinery of :mod:`nmbrl_brian.equations.eprop_synapses`:
every learning synapse ``i -> j`` keeps its eligibility trace :math:`\\bar e_{ji}` and an
accumulator ``grad`` that adds :math:`L_j \\bar e_{ji}` in every step. The readouts of
one network copy are ``A`` policy logits :math:`y_k` and a value :math:`V`.

**The head** (one neuron per copy, on the environment-period clock) runs at the start
of every period, that is once per environment step ``n``. It reads the readouts, the
environment's ports (``reward``, ``terminated``, ``needs_reset``) and a uniform number
:math:`u_n \\in [0, 1)`:

.. math::

    \\delta_{n-1} &= r_n + \\gamma V(s_n)(1 - \\mathrm{terminated}_n) - V(s_{n-1})
        \\qquad (\\text{a truncated step bootstraps}) \\\\
    \\pi_k &= e^{y_k - m} / Z, \\quad m = \\max_k y_k, \\quad Z = \\sum_k e^{y_k - m} \\\\
    a_n &= \\#\\{k < A - 1 : u_n Z \\ge \\textstyle\\sum_{l \\le k} e^{y_l - m}\\}
        \\quad (\\text{exploring; greedy: } \\arg\\max_k y_k)

The TD error needs the value of a decision's successor state, so it is finished one
period later; it is 0 when learning is off or there was no decision. A decision is
taken unless the last environment step ended the episode (``needs_reset``), in which
case the period completes the TD error (bootstrapping only on truncation), clears the
network state and the TD(lambda) traces and tells the environment to reset: that is
the one period without a decision between episodes. The head then commands the
environment: ``command = 1`` (step with ``action``), ``2`` (reset) or ``0`` (hold,
after ``episode_budget`` episodes or ``step_budget`` steps, e.g. at the end of an
evaluation or of a phase of real steps).

**Learning signals.** A decision writes, for one step, the readout errors

.. math::

    \\mathrm{err}_k = \\frac{\\alpha_\\pi\\,(\\mathbb{1}[a_n = k] - \\pi_k)}{\\|\\bar x\\|^2 + 1}
        \\quad (k < A), \\qquad
    \\mathrm{err}_V = \\frac{\\alpha_V}{\\|\\bar x\\|^2 + 1}, \\qquad
    \\|\\bar x\\|^2 = \\sum_j (\\bar z^{out}_j)^2 + \\sum_i (\\bar x^{out}_i)^2 + \\bar b^2

where :math:`\\bar x = (\\bar z^{out}, \\bar x^{out}, \\bar b)` is the readouts' whole eligibility
vector: the recurrent layer's spike trains filtered with :math:`\\kappa`, the inputs filtered
alike when they also reach the readouts directly (``network.direct_readout``), and the bias
trace (1 filtered with :math:`\\kappa`, which settles at :math:`1/(1-\\kappa)`). This is
normalised LMS: :math:`\\alpha_\\pi` (``agent.actor_lr``) and :math:`\\alpha_V`
(``agent.critic_lr``) are the fractions of :math:`\\delta (\\mathbb 1[a] - \\pi)` and
:math:`\\delta` by which one decision moves the logits and the value (through the
readout weights and biases, before the TD(lambda) tail). The errors reach the
recurrent neurons as :math:`L_j = \\sum_k B_{jk}\\mathrm{err}_k`, so ``grad`` gains
exactly :math:`L_j \\bar e_{ji}` at each decision.

**Entropy bonus** (``agent.entropy_bonus`` :math:`\beta > 0`; Williams and Peng 1991, as in A2C).
The head also computes the policy's entropy :math:`H = \log Z + m - \sum_k \pi_k y_k`, and at each
decision the policy readouts move up its gradient, immediately and not gated by the TD error:

.. math::

    \mathrm{ent}_k = \frac{\beta\,\bigl(-\pi_k (\log \pi_k + H)\bigr)}{\|\bar x\|^2 + 1}
        = \frac{\beta\, \partial H / \partial y_k}{\|\bar x\|^2 + 1}, \qquad
    w_{kj} \leftarrow w_{kj} + \mathrm{ent}_k\, \bar x_j, \quad b_k \leftarrow b_k + \mathrm{ent}_k\, \bar b

(the value readout's is 0), so a decision raises the entropy of its own state's policy by about
:math:`\beta \|\nabla_y H\|^2`: the policy does not collapse onto one action before the TD error
has shown that action to be best. Input and recurrent weights are left to the TD rule.

**TD(lambda).** Letting the accumulators decay by :math:`\\gamma\\lambda` instead of
clearing them turns them into the actor-critic's eligibility traces
:math:`z_{ji}`, and the TD error gates the weight change once per period:

.. math::

    w_{ji} \\leftarrow w_{ji} + \\eta\\,\\delta_n\\, z_{ji}, \\qquad
    z_{ji} \\leftarrow \\gamma\\lambda\\, z_{ji}\\,(1 - \\mathrm{clear})

with :math:`\\eta = 1` for the readout weights and biases (their step sizes are in
``err``) and :math:`\\eta` = ``network.learning_rate`` for input and recurrent weights.

Schedule within the ``start`` slot of a period (``order``): 0 the summed trace norm,
1 the head, 2 the readouts' learning signals, 3 the TD updates, 4 the episode clears,
then the environment step and the input encoding (see
:mod:`nmbrl_brian.equations.environment` and
:mod:`nmbrl_brian.equations.population_code`).

Its parameters (:math:`\\gamma`, :math:`\\lambda`, the step sizes) are :class:`AgentConfig`
(config section ``agent``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nmbrl_brian.errors import ConfigError

#: The agents :class:`AgentConfig` can select.
AGENT_KINDS = ("dense_actor_critic", "spiking_actor_critic", "spiking_model_based")


#: Slot orders at the start of a period (the environment and encoder follow).
ORDER_TRACE_NORM = 0
ORDER_HEAD = 1
ORDER_SIGNALS = 2
ORDER_TD_UPDATE = 3
ORDER_CLEAR = 4


def head_equations(n_actions: int) -> str:
    """State variables of the head for ``n_actions`` actions (one neuron per copy)."""
    logits = "".join(f"logit_{k} : 1 (linked)   # policy readout y_{k}\n" for k in range(n_actions))
    return (
        logits
        + """
value : 1 (linked)             # value readout V
bias_trace : 1 (linked)        # bias eligibility trace bbar of the readouts
trace_norm : 1                 # sum over the copy's recurrent neurons of zbar_out**2 (summed)
direct_norm : 1                # sum over the copy's inputs of their zbar_out**2 (summed; direct readout only)
reward : 1 (linked)            # environment port: reward of the last step
terminated : integer (linked)  # environment port: the last step reached a terminal state
needs_reset : integer (linked) # environment port: the episode is over (or not started)
episodes_done : integer (linked)  # environment port: episodes finished
steps_done : integer (linked)  # environment port: steps taken
action : integer               # the action chosen at this period's decision
command : integer              # to the environment: 0 hold, 1 step with action, 2 reset
decide : integer               # 1 if a decision was taken this period
delta : 1                      # TD error applied this period
clear : integer                # 1 if this period clears the network state (episode boundary)
value_prev : 1                 # V of the last decision, waiting for its TD error
has_prev : integer             # a decision is waiting for its TD error
logit_max : 1                  # max_k y_k of this period
partition : 1                  # sum_k exp(y_k - logit_max)
signal_scale : 1               # learning * decide / (||xbar||^2 + 1)
learning : integer             # 1: learn (TD errors, learning signals); 0: frozen
explore : integer              # 1: sample from the softmax; 0: greedy
episode_budget : integer       # decide only while episodes_done < episode_budget ...
step_budget : integer          # ... and steps_done < step_budget (then hold)
chunk_period : integer         # periods since the run started (row of the uniforms table)
periods_total : integer        # periods since the loop started (index of the uniform stream)
copy : integer (constant)      # copy of the loop
"""
    )


#: Added to the head with an entropy bonus.
HEAD_ENTROPY_EQUATIONS = "entropy : 1                    # H of this period's policy\n"


def head_step(n_actions: int, uniforms: str, entropy: bool = False) -> str:
    """Abstract code of the head's period: TD error, episode boundary, softmax sampling.

    ``uniforms`` names a TimedArray of uniform numbers in [0, 1) with one row per
    period of a run and one column per copy (row ``chunk_period``); ``entropy``: also the
    policy's entropy ``H = log Z + m - sum_k pi_k y_k`` (an entropy bonus reads it).
    """
    lines = [
        "delta = learning * has_prev * (reward + gamma*value*(1 - terminated) - value_prev)",
        "clear = needs_reset",
        "within_budget = int(episodes_done < episode_budget and steps_done < step_budget)",
        "decide = (1 - needs_reset) * within_budget",
        "command = decide + 2*needs_reset*within_budget",
        "logit_max = logit_0",
    ]
    # Running max (Brian2 code has no max()) and the first argmax, as np.argmax picks it.
    # (Temporaries start from a per-neuron expression: Brian2 treats a constant as a scalar.)
    lines.append("greedy = 0*copy")
    for k in range(1, n_actions):
        lines.append(f"greedy = greedy*int(logit_{k} <= logit_max) + {k}*int(logit_{k} > logit_max)")
        lines.append(f"logit_max = 0.5*(logit_max + logit_{k} + abs(logit_max - logit_{k}))")
    lines.append("partition = " + " + ".join(f"exp(logit_{k} - logit_max)" for k in range(n_actions)))
    if entropy:
        mean_logit = " + ".join(f"exp(logit_{k} - logit_max)*logit_{k}" for k in range(n_actions))
        lines.append(f"entropy = log(partition) + logit_max - ({mean_logit})/partition")
    lines.append(f"threshold = {uniforms}(chunk_period*period_dt, copy) * partition")
    lines.append("cumulative = 0.0*copy")
    lines.append("sampled = 0*copy")
    for k in range(n_actions - 1):
        lines.append(f"cumulative = cumulative + exp(logit_{k} - logit_max)")
        lines.append("sampled = sampled + int(threshold >= cumulative)")
    lines += [
        "action = explore*sampled + (1 - explore)*greedy",
        "signal_scale = learning * decide / (trace_norm + direct_norm + bias_trace**2 + 1)",
        "value_prev = value",
        "has_prev = decide",
        "chunk_period += 1",
        "periods_total += 1",
    ]
    return "\n".join(lines) + "\n"


#: Summed from the recurrent layer into the head (``Synapses(recurrent, head)``).
TRACE_NORM_SUM = "trace_norm_post = zbar_out_pre**2 : 1 (summed)"
#: Summed from the inputs into the head (direct readout only).
DIRECT_NORM_SUM = "direct_norm_post = zbar_out_pre**2 : 1 (summed)"

#: Added to the readouts: what they read from the head, and which readout each one is.
READOUT_LINKS = """
role : integer (constant)      # 0..A-1: policy logit of action role; A: value
policy_max : 1 (linked)        # head's logit_max
policy_partition : 1 (linked)  # head's partition
signal_scale : 1 (linked)      # head's signal_scale (0 unless learning and deciding)
chosen_action : integer (linked)  # head's action
delta : 1 (linked)             # head's TD error
clear : integer (linked)       # head's episode-boundary flag
"""

#: The readouts' learning signals of a decision (they last one step: cleared at ``end``).
READOUT_SIGNAL = """
is_policy = int(role < n_actions)
pi = exp(y - policy_max) / policy_partition
err = signal_scale * (is_policy*actor_lr*(int(chosen_action == role) - pi) + (1 - is_policy)*critic_lr)
"""

#: Added to the readouts with an entropy bonus.
READOUT_ENTROPY_LINKS = """
policy_entropy : 1 (linked)    # head's entropy
ent : 1                        # the entropy bonus's step of this decision (0 for the value)
"""

#: A decision's entropy step (after :data:`READOUT_SIGNAL`, whose ``pi`` it reads).
READOUT_ENTROPY_SIGNAL = """
ent = signal_scale * is_policy * entropy_bonus * (-pi * (y - policy_max - log(policy_partition) + policy_entropy))
"""

#: Once per period, on the readout synapses (recurrent and direct): the entropy step, immediate.
ENTROPY_WEIGHT_UPDATE = "w += ent_post*zbar_out_pre\n"
#: The same for the readout biases.
ENTROPY_BIAS_UPDATE = "b += ent*bbar\n"

#: Added to the learning and readout synapses (linked through their ``copy`` index).
SYNAPSE_LINKS = """
delta : 1 (linked)             # head's TD error
clear : integer (linked)       # head's episode-boundary flag
"""

#: Added to the input and recurrent neurons.
NEURON_LINKS = """
clear : integer (linked)       # head's episode-boundary flag
"""

#: Once per period: apply the TD error, then decay (or clear) the TD(lambda) trace.
TD_WEIGHT_UPDATE = """
w += lr*delta*grad
grad = gamma_lambda*grad*(1 - clear)
"""

#: The same for the readout biases (eligibility ``bbar``, accumulator ``grad_b``).
TD_BIAS_UPDATE = """
b += lr_b*delta*grad_b
grad_b = gamma_lambda*grad_b*(1 - clear)
"""

#: At the end of every step: a decision's learning signal lasts exactly one step.
CLEAR_LEARNING_SIGNAL = "err = 0"


def clear_code(variables: list[str] | tuple[str, ...]) -> str:
    """Abstract code that zeroes ``variables`` in a period whose ``clear`` flag is set."""
    return "".join(f"{v} = {v}*(1 - clear)\n" for v in variables)


#: The state cleared at an episode boundary, per group (ALIF adds ``a`` and ``eps_a``).
CLEARED_INPUT = ("s", "zbar")
CLEARED_RECURRENT = ("v", "I_syn", "ref_left", "psi", "zbar", "zbar_out")
CLEARED_READOUT = ("y", "I_syn", "bbar")
CLEARED_SYNAPSE = ("ebar",)


@dataclass(frozen=True)
class AgentConfig:
    """The actor-critic learning rule: TD error, eligibility traces and step sizes."""

    kind: str = "dense_actor_critic"
    """Which agent to build: ``"dense_actor_critic"``, ``"spiking_actor_critic"`` or
    ``"spiking_model_based"`` (the spiking actor-critic learning in a world model's dreams)."""
    gamma: float = 0.99
    """Discount factor of the TD error, in [0, 1)."""
    trace_decay: float = 0.8
    """Eligibility-trace decay lambda of TD(lambda), in [0, 1]."""
    actor_lr: float = 0.01
    """Normalised step size of the actor: one decision moves the policy logits by about
    ``actor_lr * delta * (onehot(a) - pi)`` (its features or eligibilities have unit norm: the dense
    agent normalises its features, the spiking agent divides its learning signals by the squared
    norm of the readouts' eligibility vector, as in normalised LMS)."""
    critic_lr: float = 0.05
    """Normalised step size of the critic: one step moves the value by about ``critic_lr * delta``."""
    reward_shaping: float = 0.0
    """Scale ``k`` of a potential-based shaping term ``k (gamma Phi(s') - Phi(s))`` added to every
    reward the spiking agent learns from: the model-free agent's real steps (a gymnasium task) and
    the model-based agent's dreamed steps (:func:`~nmbrl_brian.equations.dream.dream_env_step`; its
    real steps keep the task's reward, which the world model learns), ``Phi`` the task's potential (Acrobot: the
    free end's height, :mod:`~nmbrl_brian.world_models.termination`; an error for a task without
    one). It keeps the task's best policy (Ng, Harada and Russell 1999) and gives episodes that never
    reach the goal a signal. Evaluations on the real task score its reward alone; dreamed evaluations
    score the shaped return. 0: none."""

    entropy_bonus: float = 0.0
    """Scale ``beta`` of an entropy bonus on the spiking agent's policy readouts: at each decision
    (learning on) they move by ``beta`` times the gradient of the policy's entropy, normalised like
    the actor's step (module docstring), so the policy does not collapse onto one action before the
    TD error favours it. 0: none."""

    def __post_init__(self) -> None:
        if self.kind not in AGENT_KINDS:
            raise ConfigError("agent.kind", "one of " + ", ".join(repr(k) for k in AGENT_KINDS), self.kind)
        if not 0.0 <= self.gamma < 1.0:
            raise ConfigError("agent.gamma", "a number in [0, 1)", self.gamma)
        if not 0.0 <= self.trace_decay <= 1.0:
            raise ConfigError("agent.trace_decay", "a number in [0, 1]", self.trace_decay)
        for name in ("actor_lr", "critic_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"agent.{name}", "a finite number > 0", value)
        # terms only the spiking agents have: a finite number >= 0, and 0 for the dense agent
        for name, whose in (
            ("reward_shaping", "the spiking agents shape"),
            ("entropy_bonus", "a spiking agent's readouts"),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"agent.{name}", "a finite number >= 0", value)
            if value > 0 and self.kind == "dense_actor_critic":
                raise ConfigError(f"agent.{name}", f"0 for the dense agent ({whose})", value)
