"""The one place where a gymnasium environment meets a Brian2 network: a ``network_operation``.

Every environment period (``T_env`` of network time) the bridge runs once, in the
``start`` slot before the learning rule's ``run_regularly`` operations:

1. read the readouts of the period that just ended: policy logits and value V;
2. finish the previous transition's TD error
   ``delta = r + gamma * V * (1 - terminated) - V_prev`` and hand it to the network
   (which applies ``w += delta * z`` to every learning synapse);
3. sample the action from ``softmax(logits)`` (or take the argmax when not exploring),
   write the learning signals for this decision (actor: ``alpha_pi * (onehot(a) - pi)``,
   critic: ``alpha_V``, both divided by the squared norm of the filtered spike trains)
   so the synapses can add ``L_post * e_bar`` to their TD(lambda) traces;
4. step the environment and present the new observation as the next period's input.

Episode ends take two extra periods without an environment step. When a step ends
the episode, the final observation is presented for one period. At the next call,
the TD error is completed: a ``terminated`` step gets no bootstrap, and a
``truncated`` step bootstraps from the value of that final observation. The
traces and network state are then cleared, and the first observation of the next
episode is presented for one period before the first decision is made.

Brian2 drops network operations from standalone builds; the agent calls
:func:`nmbrl_brian.devices.check_no_network_operations` before running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from brian2 import Clock, NetworkOperation

from nmbrl_brian.training.env_loop import EnvLoop


class BridgedNetwork(Protocol):
    """What the bridge needs from an actor-critic network."""

    n_actions: int

    def read_outputs(self) -> np.ndarray:
        """Current readout values: ``n_actions`` logits followed by the value."""

    def begin_period(self) -> None:
        """Clear last period's TD error and decision flag (nothing is learned unless set again)."""

    def present(self, obs: np.ndarray) -> None:
        """Drive the input layer with ``obs`` for the coming period."""

    def apply_td_error(self, delta: float) -> None:
        """``w += delta * z`` for every learning synapse (and readout bias)."""

    def set_learning_signals(self, signals: np.ndarray) -> None:
        """Per-readout learning signals of a decision taken now (length ``n_actions + 1``)."""

    def trace_norm(self) -> float:
        """Squared norm of the recurrent layer's filtered spike trains (step-size normaliser)."""

    def clear_episode_state(self) -> None:
        """Reset membrane potentials, filtered spikes, readouts and TD(lambda) traces."""


@dataclass
class BridgeState:
    """Bookkeeping the bridge carries from one period to the next (checkpointed)."""

    started: bool = False
    """An observation has been presented since the last reset."""
    value_prev: float | None = None
    """V of the last decision, waiting for its TD error."""
    reward: float = 0.0
    """Reward of the last step."""
    terminated: bool = False
    """The last step ended in a terminal state."""
    episode_ending: bool = False
    """The last step ended the episode; the next call completes it."""
    steps: int = 0
    """Environment steps taken through this bridge."""
    episodes: int = 0
    """Episodes completed through this bridge."""


class EnvironmentBridge:
    """Couples an :class:`EnvLoop` to a :class:`BridgedNetwork` once per environment period.

    Parameters
    ----------
    network : BridgedNetwork
        The spiking actor-critic.
    clock : brian2.Clock
        Ticks once per environment step (``dt`` = network time per environment step).
    gamma, actor_lr, critic_lr : float
        Discount and step sizes of the TD(lambda) actor-critic.
    rng : numpy.random.Generator
        Source of action samples.
    name : str
        Name of the network operation.
    """

    def __init__(
        self,
        network: BridgedNetwork,
        clock: Clock,
        *,
        gamma: float,
        actor_lr: float,
        critic_lr: float,
        rng: np.random.Generator,
        name: str = "env_bridge",
    ):
        self.network = network
        self.gamma = gamma
        self.actor_lr = actor_lr
        self.critic_lr = critic_lr
        self.rng = rng
        self.state = BridgeState()
        self.loop: EnvLoop | None = None
        self.explore = True
        self.learn = True
        self.max_episodes: int | None = None
        self.on_budget_spent = lambda: None
        self.operation = NetworkOperation(self._tick, clock=clock, when="start", order=-10, name=name)

    def attach(
        self,
        loop: EnvLoop,
        *,
        explore: bool,
        learn: bool,
        max_episodes: int | None = None,
        on_budget_spent=lambda: None,
    ) -> None:
        """Point the bridge at ``loop`` for the next run.

        A step budget is enforced by the caller through the run duration (one
        period per step at most), which keeps chunked runs identical to one long
        run. An episode budget calls ``on_budget_spent`` (e.g. ``Network.stop``)
        once ``max_episodes`` more episodes have completed.
        """
        self.loop = loop
        self.explore, self.learn = explore, learn
        self.max_episodes = None if max_episodes is None else self.state.episodes + max_episodes
        self.on_budget_spent = on_budget_spent

    def _tick(self) -> None:
        st, net, loop = self.state, self.network, self.loop
        if loop is None:  # pragma: no cover - the agent always attaches a loop before running
            return
        if not st.started:
            net.present(loop.obs)
            st.started = True
            return
        y = net.read_outputs()
        logits, value = y[: net.n_actions], float(y[net.n_actions])
        net.begin_period()
        if st.value_prev is not None and self.learn:
            bootstrap = 0.0 if st.terminated else self.gamma * value
            net.apply_td_error(st.reward + bootstrap - st.value_prev)
        if st.episode_ending:
            net.clear_episode_state()
            st.value_prev, st.episode_ending = None, False
            st.episodes += 1
            net.present(loop.obs)  # the loop has already reset the environment
            if self.max_episodes is not None and st.episodes >= self.max_episodes:
                self.on_budget_spent()
            return
        action = self._choose(logits)
        t = loop.step(action)
        st.steps += 1
        st.reward, st.terminated = t.reward, t.terminated
        st.value_prev = value
        if t.terminated or t.truncated:
            st.episode_ending = True
            net.present(t.next_obs)
        else:
            net.present(loop.obs)

    def _choose(self, logits: np.ndarray) -> int:
        net = self.network
        if not self.explore:
            return int(np.argmax(logits))
        z = logits - logits.max()
        pi = np.exp(z) / np.exp(z).sum()
        action = int(self.rng.choice(net.n_actions, p=pi))
        if self.learn:
            norm = net.trace_norm() + 1.0
            signals = np.empty(net.n_actions + 1)
            signals[: net.n_actions] = self.actor_lr * (np.eye(net.n_actions)[action] - pi) / norm
            signals[net.n_actions] = self.critic_lr / norm
            net.set_learning_signals(signals)
        return action
