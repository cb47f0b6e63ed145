"""The spiking world model inside a closed loop computes what the stand-alone SNNWorldModel computes.

The learner part, fed the rows an epoch of :meth:`SNNWorldModel.train_epoch` presents, ends
with the same weights; the dream predictor, loaded with a fitted model, steps a dream as
:meth:`SNNWorldModel.predict` predicts.
"""

from __future__ import annotations

import dataclasses

import brian2
import numpy as np
from brian2 import Network, NeuronGroup, ms
from nmbrl_brian.equations.environment import RESET, STEP

from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.parts.dream import DreamPart
from nmbrl_brian.parts.world_model import SpikingPredictor, WorldModelLearnerPart
from nmbrl_brian.world_models.dataset import collect_transitions
from nmbrl_brian.world_models.snn_world_model import (
    DEFAULT_WORLD_MODEL_NETWORK,
    SNNWorldModel,
    WorldModelConfig,
)
from nmbrl_brian.world_models.termination import CartPoleTermination

N = 120
CONFIG = WorldModelConfig(
    network=dataclasses.replace(DEFAULT_WORLD_MODEL_NETWORK, n_recurrent=60),
    epochs=1,
    min_updates=0,
    periods_per_run=N,
    shuffle=False,
)


def data():
    return collect_transitions(EnvironmentWrapper(), None, N, seed=3)


def test_learner_part_learns_as_the_epoch_trainer():
    brian2.prefs.codegen.target = "numpy"
    dataset = data()
    reference = SNNWorldModel.for_env("CartPole-v1", config=CONFIG, name_prefix="wmref")
    reference.train_epoch(dataset)

    model = SNNWorldModel.for_env("CartPole-v1", config=CONFIG, name_prefix="wmpart")
    learner = WorldModelLearnerPart(model, period=10 * ms, periods_per_run=N, prefix="wmpart")
    model._prepare(dataset)
    inputs, (targets, weights) = model.encode(dataset.obs, dataset.action), model.targets(dataset)
    learner.set_rows(inputs, targets, weights)
    for (group, name), value in {
        **learner.run_values(),
        **learner.learning_rate_values(model.learning_rates(0, len(dataset))),
    }.items():
        group.variables[name].set_value(value)
    for table, values in learner.tables(None, N).items():
        table.values[:] = values
    Network(*learner.objects).run(N * 10 * ms + 1 * ms, namespace={})
    for key, (obj, var) in learner.weight_variables().items():
        np.testing.assert_allclose(
            np.asarray(getattr(obj, var)[:]),
            reference.weights[key],
            rtol=1e-9,
            atol=1e-12,
            err_msg=f"{key}: learner part vs SNNWorldModel.train_epoch",
        )
    assert np.max(np.abs(reference.weights["w_direct"])) > 0, "the epoch should have learned something"


def test_dream_predictor_steps_as_the_model_predicts():
    brian2.prefs.codegen.target = "numpy"
    dataset = data()
    model = SNNWorldModel.for_env(
        "CartPole-v1", config=dataclasses.replace(CONFIG, epochs=3), name_prefix="wmfit"
    )
    model.fit(dataset)
    predictor = SpikingPredictor(model, prefix="wmdream")
    dream = DreamPart(
        4,
        2,
        predictor,
        period=10 * ms,
        horizon=50,
        termination=CartPoleTermination.from_env(),
        starts_per_run=10,
        prefix="sdream",
    )
    head = NeuronGroup(1, "command : integer\naction : integer", clock=dream.clock, name="sdream_head")
    dream.connect_agent(head)
    net = Network(head, *dream.objects)
    for (group, name), value in predictor.values_from(model).items():
        group.variables[name].set_value(value)
    dream.set_start_states(dataset.obs[10:11])
    for table, values in dream.tables(lambda g, v: np.asarray(getattr(g, v)[:]), 1).items():
        table.values[:] = values
    head.command = RESET
    net.run(10 * ms)
    obs = np.array(dream.obs_port.obs[:])
    np.testing.assert_array_equal(obs, dataset.obs[10])
    errors = []
    for step in range(8):
        action = step % 2
        head.command, head.action = STEP, action
        net.run(10 * ms)
        expected, reward, _ = model.predict(obs[None, :], np.array([action]))
        got = np.array(dream.obs_port.obs[:])
        errors.append(np.max(np.abs(got - expected[0])))
        assert abs(dream.env.reward[0] - reward[0]) < 1e-6
        obs = got
        if dream.env.needs_reset[0]:
            break
    assert max(errors) < 1e-6, f"dream steps differ from SNNWorldModel.predict by {max(errors):.3g}"
