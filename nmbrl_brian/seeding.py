"""Every random stream of a run, derived from the run's ``seed`` in one place.

A run has one integer seed (``RunConfig.seed``, ``nmbrl run --seed``). Each stream below
is a pure function of that seed and of counters (episode, evaluation, cycle, pass, block),
never of how a run is cut into Brian2 runs, so a resumed or chunked run draws the same
numbers as one long run.

===================== ================================================ ==============================================
stream                formula                                          used by
===================== ================================================ ==============================================
network               ``default_rng(seed)``                            connectivity and initial weights of an e-prop
                                                                       network, one generator per copy
                                                                       (:func:`~nmbrl_brian.snn.eprop_network.build_eprop_network`);
                                                                       the dense agent's weights and actions; the
                                                                       MLP world model's initialisation and batches
action uniforms       ``default_rng([seed, 0x5EED, b]).random(1024)``  the spiking agent's action sampling, block ``b``
                                                                       of 1024 periods (:mod:`nmbrl_brian.parts.agent`)
episode reset         ``seed + k``                                     reset of episode ``k`` of a training or
                                                                       evaluation loop (:class:`~nmbrl_brian.envs.env_loop.EnvLoop`,
                                                                       the CartPole part, the PPO peer)
evaluation            ``10**6 * (1 + seed) + i * episodes``            first reset seed of evaluation ``i``
                                                                       (:mod:`nmbrl_brian.training.actor_critic_trainer`,
                                                                       :mod:`nmbrl_brian.peers`); disjoint from training
kept policy           evaluation ``i = 10**5``                         the evaluation of the kept (best) policy
world-model pass      ``default_rng([seed, cycle, pass])``             the order of pass ``pass`` of the model-based
                                                                       cycle ``cycle``'s world-model fit
                                                                       (:func:`~nmbrl_brian.world_models.fitting.fit_in_loop`)
world-model epoch     ``default_rng([seed, epoch])``                   the order of epoch ``epoch`` of
                                                                       :meth:`SNNWorldModel.fit <nmbrl_brian.world_models.snn_world_model.SNNWorldModel.fit>`
dream starts          ``default_rng([seed, copy, resets])``            the real states dreamed episodes of copy ``copy``
                                                                       start from, after ``resets`` resets
                                                                       (:class:`~nmbrl_brian.parts.dream.DreamPart`)
collection reset      ``SeedSequence([seed, e]).generate_state(1)[0]`` reset of episode ``e`` of a transition
                                                                       collection (:mod:`nmbrl_brian.world_models.dataset`)
collection actions    ``default_rng([seed, e, 1])``                    the random policy's actions in that episode
data split            ``default_rng(seed)``                            the held-out split of a transition dataset
rollout segments      ``default_rng(seed)``                            the subsample of rollout segments evaluated
===================== ================================================ ==============================================

The world model takes the run's seed (``training/run.py``), so its network and the
agent's are drawn from the same ``network`` stream (their sizes differ). The spiking agent's
interactive :meth:`~nmbrl_brian.agents.spiking_actor_critic.SpikingActorCritic.act` with
``explore=True`` is the one unseeded draw (no training or evaluation uses it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Periods per block of the action-uniform stream.
UNIFORM_BLOCK = 1024
#: The evaluation index of the kept policy's evaluation: a range no regular evaluation reaches.
KEPT_POLICY_EVAL_INDEX = 10**5


def network_rng(seed: int) -> np.random.Generator:
    """The generator of a network's connectivity and initial weights (one per copy seed)."""
    return np.random.default_rng(seed)


def action_uniform_block(seed: int, block: int) -> np.ndarray:
    """Uniform numbers of periods ``block * UNIFORM_BLOCK ..`` of copy seed ``seed`` (action sampling)."""
    return np.random.default_rng([seed, 0x5EED, block]).random(UNIFORM_BLOCK)


def episode_reset_seed(first_seed: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of a loop whose episode 0 is reset with ``first_seed``."""
    return first_seed + episode


def evaluation_seed(run_seed: int, eval_index: int, eval_episodes: int) -> int:
    """First reset seed of evaluation ``eval_index``; disjoint from training seeds (< 10**6)."""
    return 10**6 * (1 + run_seed) + eval_index * eval_episodes


def kept_policy_seed(run_seed: int, eval_episodes: int) -> int:
    """First reset seed of the kept policy's evaluation."""
    return evaluation_seed(run_seed, KEPT_POLICY_EVAL_INDEX, eval_episodes)


def fit_pass_seed(seed: int, cycle: int, pass_index: int) -> list[int]:
    """The seed of the order of pass ``pass_index`` of model-based cycle ``cycle``'s world-model fit."""
    return [seed, cycle, pass_index]


def epoch_seed(seed: int, epoch: int) -> list[int]:
    """The seed of the order of epoch ``epoch`` of a world model's own fit."""
    return [seed, epoch]


def order_rng(seed: int | Sequence[int]) -> np.random.Generator:
    """The generator of a pass order (from :func:`fit_pass_seed` or :func:`epoch_seed`)."""
    return np.random.default_rng(seed)


def dream_start_rng(seed: int, copy: int, resets: int) -> np.random.Generator:
    """The generator of the start states of dream copy ``copy`` after ``resets`` resets."""
    return np.random.default_rng([seed, copy, resets])


def collection_episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of a transition collection seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(episode)]).generate_state(1)[0])


def collection_action_rng(seed: int, episode: int) -> np.random.Generator:
    """The random policy's generator in episode ``episode`` of a collection seeded with ``seed``."""
    return np.random.default_rng([int(seed), int(episode), 1])


def split_rng(seed: int) -> np.random.Generator:
    """The generator of a dataset's held-out split."""
    return np.random.default_rng(seed)


def segment_rng(seed: int) -> np.random.Generator:
    """The generator of the subsample of rollout segments an evaluation scores."""
    return np.random.default_rng(seed)
