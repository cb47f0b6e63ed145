"""The world model's readouts normalised jointly over the direct pathway and the spiking layer.

``world_model.readout_gain = lambda > 0`` (:mod:`nmbrl_brian.equations.direct_readout`, "Joint
normalisation"): one update removes the fraction ``direct_learning_rate`` of the error on the
sample it learns from, whatever the scale of the inputs, and refits on states far beyond the
first data's range stay bounded where the plain spiking readout's steps beside the normalised
direct pathway make the weights grow.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from nmbrl_brian.equations.world_model import WorldModelConfig
from nmbrl_brian.errors import ConfigError

sys.path.insert(0, str(Path(__file__).parent))
from test_world_model_drift import CONFIG, _transitions


def _model(readout_gain: float, n_recurrent: int = 300, **changes):
    from nmbrl_brian.config import load_config
    from nmbrl_brian.world_models.snn_world_model import SNNWorldModel

    run = load_config(CONFIG, [])
    config = dataclasses.replace(
        run.world_model, min_updates=2000, readout_learning_rate=2e-5, readout_gain=readout_gain, **changes
    )
    config = dataclasses.replace(config, network=dataclasses.replace(config.network, n_recurrent=n_recurrent))
    return SNNWorldModel.for_env("CartPole-v1", config=config, name_prefix=f"wmj{int(readout_gain * 10)}")


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["typical", "30_times"])
def test_one_update_removes_its_fraction_of_the_error(scale):
    """The same sample presented again and again: each update leaves about (1 - eta) of the error,
    the same on every readout, for inputs of ordinary size and 30 times larger. (Not exactly: the
    learner's readouts and neurons carry state from one period into the next, so the direct
    pathway alone leaves 0.577 with eta = 0.4 too.)"""
    from nmbrl_brian.world_models import fitting

    eta, repeats = 0.4, 6
    rng = np.random.default_rng(3)
    data = _transitions(60, rng, 0.0)
    model = _model(1.0, n_recurrent=50, direct_learning_rate=eta)
    model.fit(data)  # fits the code (ranges, scalers) and gives the weights a start
    learner, loop = model._fresh_loop()
    assert learner.joint
    inputs = np.repeat(model.encode(data.obs[:1], data.action[:1]) * scale, repeats, axis=0)
    target = rng.normal(0.0, 1.0, (1, model.n_outputs))
    values = {**learner.weight_values(model.weights), **learner.learning_rate_values((0.0, 0.0, eta))}
    ones = np.ones((repeats, model.n_outputs))
    outputs = fitting.present(
        loop,
        learner,
        inputs,
        np.repeat(target, repeats, axis=0),
        ones,
        values,
        run=model._runner("train_run"),
    )
    error = outputs - target
    assert np.all(np.abs(error[0]) > 1e-3), error[0]
    ratio = error[2:] / error[1:-1]  # the first presentation follows a silent period
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-6)
    np.testing.assert_allclose(ratio, 1 - eta, atol=eta / 10)


def test_refits_on_drifting_states_stay_bounded():
    """test_world_model_drift's data (the cart drifting out of the first 100 transitions' range),
    300 spiking neurons, readout step 2e-5: plain steps beside the normalised direct pathway make
    the readout weights grow past 1 by the fourth refit; jointly normalised they stay small and
    the model stays accurate."""
    from nmbrl_brian.world_models.dataset import TransitionDataset
    from nmbrl_brian.world_models.evaluation import one_step_metrics

    rng = np.random.default_rng(0)
    data = TransitionDataset.concatenate([_transitions(100, rng, 0.0), _transitions(900, rng, 2.0)])
    held_out = _transitions(200, np.random.default_rng(1), 2.0)
    largest = {}
    for gain in (0.0, 1.0):
        model = _model(gain)
        for n in (100, 400, 700, 1000):  # refits on all data so far, as the model-based cycle does
            model.fit(data.subset(slice(0, n)))
        largest[gain] = float(np.abs(model.weights["w_out"]).max())
        if gain:
            metrics = one_step_metrics(model, held_out)
            nmse = float(metrics.query("metric == 'nmse' and dim == 'mean'").value.iloc[0])
            assert nmse < 0.01, nmse
    assert largest[0.0] > 1.0, largest
    assert largest[1.0] < 0.05, largest


@pytest.mark.parametrize(
    "changes",
    [
        {"readout_gain": -1.0},
        {"readout_gain": 1.0, "direct_readout": False},
        {"readout_gain": 1.0, "direct_normalized": False},
    ],
    ids=["negative", "no_direct_pathway", "direct_not_normalised"],
)
def test_readout_gain_is_checked(changes):
    with pytest.raises(ConfigError, match="readout_gain"):
        WorldModelConfig(**changes)
