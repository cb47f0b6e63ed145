"""The random streams of nmbrl_brian.seeding: their formulas, and that no other module draws seeds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import nmbrl_brian
from nmbrl_brian import seeding


def test_reset_and_evaluation_seeds_follow_their_formulas():
    assert seeding.episode_reset_seed(7, 0) == 7
    assert seeding.episode_reset_seed(7, 5) == 12
    assert seeding.evaluation_seed(0, 0, 10) == 10**6
    assert seeding.evaluation_seed(2, 3, 10) == 3 * 10**6 + 30
    assert seeding.kept_policy_seed(2, 10) == seeding.evaluation_seed(2, 10**5, 10)
    # evaluations never reach the seeds of training episodes (< 10**6) nor another run's range
    assert seeding.evaluation_seed(0, 0, 10) > seeding.episode_reset_seed(0, 10**6 - 1)


def test_generator_streams_are_the_documented_numpy_draws():
    def same(a: np.random.Generator, b: np.random.Generator) -> bool:
        return np.array_equal(a.random(5), b.random(5))

    assert same(seeding.network_rng(4), np.random.default_rng(4))
    assert same(seeding.dream_start_rng(4, 1, 9), np.random.default_rng([4, 1, 9]))
    assert same(seeding.order_rng(seeding.fit_pass_seed(4, 2, 3)), np.random.default_rng([4, 2, 3]))
    assert same(seeding.order_rng(seeding.epoch_seed(4, 2)), np.random.default_rng([4, 2]))
    assert same(seeding.collection_action_rng(4, 2), np.random.default_rng([4, 2, 1]))
    block = seeding.action_uniform_block(4, 2)
    assert block.shape == (seeding.UNIFORM_BLOCK,)
    assert np.array_equal(block, np.random.default_rng([4, 0x5EED, 2]).random(seeding.UNIFORM_BLOCK))


def test_collection_episode_seeds_are_pinned():
    """Regression values: a change here changes every collected dataset."""
    assert seeding.collection_episode_seed(0, 0) == 2968811710
    assert seeding.collection_episode_seed(3, 7) == 2580024465


def test_no_other_module_draws_seeded_numbers():
    """Every seeded generator of the package comes from nmbrl_brian/seeding.py."""
    root = Path(nmbrl_brian.__file__).parent
    pattern = re.compile(r"default_rng\((?!\))|SeedSequence\(")  # default_rng() unseeded is allowed
    offenders = [
        f"{path.relative_to(root)}:{i}"
        for path in root.rglob("*.py")
        if path.name != "seeding.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
