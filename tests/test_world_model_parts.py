"""The spiking world model's parts: the learner (run by a ClosedLoop of its own) and the dream predictor.

``SNNWorldModel`` fits and predicts through the learner part in a :class:`ClosedLoop`, so it
is checked against numbers stored from the stand-alone implementation it replaced (its own
``brian2.Network``, restored before every run); the dream predictor, a second network that
encodes ``(s, a)`` in Brian2 code, steps a dream as :meth:`SNNWorldModel.predict` predicts.
"""

from __future__ import annotations

import dataclasses

import brian2
import numpy as np
import pytest
from brian2 import Network, NeuronGroup, ms

from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.equations.environment import RESET, STEP
from nmbrl_brian.equations.world_model import DEFAULT_WORLD_MODEL_NETWORK, WorldModelConfig
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts.dream import DreamPart
from nmbrl_brian.parts.world_model import SpikingPredictor, WorldModelLearnerPart
from nmbrl_brian.world_models.dataset import collect_transitions
from nmbrl_brian.world_models.fitting import fit_in_loop, present
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel
from nmbrl_brian.world_models.termination import CartPoleTermination

N = 120
CONFIG = WorldModelConfig(
    network=dataclasses.replace(DEFAULT_WORLD_MODEL_NETWORK, n_recurrent=60),
    epochs=1,
    min_updates=0,
    periods_per_run=N,
    shuffle=False,
)

#: Computed by the stand-alone implementation before the world model ran in a ClosedLoop
#: (numpy target): two ``train_epoch`` on ``data()`` with ``REFERENCE_CONFIG``, then ``predict``
#: of the first three (s, a).
REFERENCE_CONFIG = dataclasses.replace(CONFIG, shuffle=True, termination="learned")
REFERENCE = {
    "online": [0.08430194407309706, 1.7202116496651263e-05],
    "wsum": {
        "w_in": 107.8458091064577,
        "w_out": 0.15135562915146544,
        "b_out": 0.010144240374500894,
        "w_rec": 34.39798633400837,
        "w_direct": 0.8969879788596646,
    },
    "next": [
        [-0.0035717854135056803, -0.2288451207991171, 0.00810101319633641, 0.2911880059199169],
        [-0.008149936050218552, -0.033925575086835136, 0.013928684865238294, 0.0024113945199885634],
        [-0.00882724519624125, 0.161008129803148, 0.013953226946306092, -0.28607326288864976],
    ],
    "term": [0.03396204756727427, 0.05539081054443084, 0.05949593891363916],
}


def data():
    return collect_transitions(EnvironmentWrapper(), None, N, seed=3)


def check_reference(model, dataset) -> None:
    """Two epochs and a prediction of ``model`` give the stored numbers (to 1e-9)."""
    online = [model.train_epoch(dataset)["online_nmse"] for _ in range(2)]
    np.testing.assert_allclose(online, REFERENCE["online"], rtol=1e-9, err_msg="online NMSE of the epochs")
    for key, total in REFERENCE["wsum"].items():
        assert abs(np.abs(model.weights[key]).sum() - total) <= 1e-9 * total, f"{key}: weights changed"
    nxt, reward, term = model.predict(dataset.obs[:3], dataset.action[:3])
    np.testing.assert_allclose(nxt, REFERENCE["next"], rtol=1e-9, atol=1e-13, err_msg="predicted next states")
    np.testing.assert_allclose(term, REFERENCE["term"], rtol=1e-9, err_msg="predicted termination")
    np.testing.assert_allclose(reward, 1.0, atol=1e-9)


def test_the_loop_run_model_reproduces_the_stand_alone_numbers():
    """Epoch errors, weights and predictions as the model computed with its own Network."""
    brian2.prefs.codegen.target = "numpy"
    model = SNNWorldModel.for_env("CartPole-v1", config=REFERENCE_CONFIG, name_prefix="wmref")
    check_reference(model, data())


@pytest.mark.slow
@pytest.mark.standalone
def test_the_loop_run_model_reproduces_the_stand_alone_numbers_under_cpp_standalone(tmp_path):
    """The same numbers from one cpp_standalone build, re-run with run_args for every run."""
    from nmbrl_brian.devices import reset_device, select_device

    dataset = data()
    select_device("cpp_standalone", tmp_path / "build")
    try:
        model = SNNWorldModel.for_env("CartPole-v1", config=REFERENCE_CONFIG, name_prefix="wmcpp")
        check_reference(model, dataset)
        assert len(model.timings["build"]) == 2, f"one construction, one compilation: {model.timings}"
    finally:
        reset_device()


def test_learner_alone_in_a_loop_leaves_nothing_pending():
    """A loop of the learner part alone: its periods come from the learner's tables, its records
    hold the period predictions, and a run ends with every update applied (a silent row)."""
    brian2.prefs.codegen.target = "numpy"
    dataset = data().subset(slice(0, 40))
    model = SNNWorldModel.for_env("CartPole-v1", config=dataclasses.replace(CONFIG, periods_per_run=25))
    learner = WorldModelLearnerPart(
        model, period=10 * ms, periods_per_run=26, prefix="wmalone", record_outputs=True
    )
    loop = ClosedLoop(parts=[learner], name="wmalone_loop")
    assert loop.periods_per_run == 26 and loop.environments == []
    runs = []

    def run(periods, values, active):
        runs.append(periods)
        return loop.run(periods, values, active)

    rows = fit_in_loop(loop, learner, model, dataset, cycle=0, run=run)
    assert runs == [26, 16], f"40 transitions, 25 per run, each run with one silent row: {runs}"
    assert len(rows) == 1 and np.isfinite(rows[0]["online_nmse"])
    after = {k: v.copy() for k, v in model.weights.items()}
    assert np.any(after["w_direct"] != 0), "the fit should have learned something"
    # A run with learning on but no error: weights stay (no gradient was left for it to apply).
    silent = np.zeros((5, model.n_outputs))
    outputs = present(
        loop,
        learner,
        model.encode(dataset.obs[:5], dataset.action[:5]),
        silent,
        silent,
        learner.learning_rate_values(model.learning_rates(0, len(dataset))),
        run=run,
    )
    assert outputs.shape == (5, model.n_outputs)
    for key, (obj, var) in learner.weight_variables().items():
        np.testing.assert_array_equal(
            loop.value(obj, var), after[key], err_msg=f"{key} changed after the fit"
        )


def test_loop_parts_must_agree():
    brian2.prefs.codegen.target = "numpy"
    model = SNNWorldModel.for_env("CartPole-v1", config=CONFIG)
    a = WorldModelLearnerPart(model, period=10 * ms, periods_per_run=10, prefix="wma")
    b = WorldModelLearnerPart(model, period=10 * ms, periods_per_run=12, prefix="wmb")
    with pytest.raises(ValueError, match="^wmb: expected periods_per_run = 10"):
        ClosedLoop(parts=[a, b])
    with pytest.raises(ValueError, match="^agent, env"):
        ClosedLoop(None, object(), parts=[a])
    with pytest.raises(ValueError, match="^parts"):
        ClosedLoop()


def test_dream_predictor_steps_as_the_model_predicts():
    """The predictor's Brian2 input code equals the NumPy code of the learner's tables, and the
    dream steps as SNNWorldModel.predict (the learner network) predicts."""
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
        # The inputs of this period: copy a is given (s', a) for the state the step reached.
        x = np.asarray(predictor.eprop.inputs.x[:]).reshape(2, model.n_inputs)
        np.testing.assert_allclose(
            x,
            model.encode(np.repeat(got[None, :], 2, axis=0), np.arange(2)),
            rtol=1e-15,
            atol=0,
            err_msg="the predictor's Brian2 code and the NumPy code of the tables disagree",
        )
        errors.append(np.max(np.abs(got - expected[0])))
        assert abs(dream.env.reward[0] - reward[0]) < 1e-6
        obs = got
        if dream.env.needs_reset[0]:
            break
    assert max(errors) < 1e-6, f"dream steps differ from SNNWorldModel.predict by {max(errors):.3g}"
