"""Config loading and validation: every bad key, type or value names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmbrl_brian.config import RunConfig, describe, from_dict, load_config, load_config_json
from nmbrl_brian.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"


def test_defaults_are_valid_and_cartpole():
    cfg = RunConfig()
    assert cfg.env_id == "CartPole-v1", f"default env should be CartPole-v1, got {cfg.env_id}"
    assert cfg.device == "runtime"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.total_env_steps > 0, f"{name}: total_env_steps should be positive"


def test_set_overrides_nested_and_top_level():
    cfg = load_config(
        CONFIGS / "cartpole_dense.toml",
        ["total_env_steps=20000", "agent.gamma=0.97", "env_id=CartPole-v0", "encoding.obs_low=[-1,-2,-3,-4]"],
        seed=7,
    )
    assert cfg.total_env_steps == 20000, "top-level --set was not applied"
    assert cfg.agent.gamma == 0.97, "nested --set agent.gamma was not applied"
    assert cfg.env_id == "CartPole-v0", "bare-string --set value was not applied"
    assert cfg.encoding.obs_low == (-1.0, -2.0, -3.0, -4.0), "list --set value was not converted to a tuple"
    assert cfg.seed == 7, "--seed keyword should override the file"


@pytest.mark.parametrize(
    "override, field, allowed",
    [
        ("agent.gamma=1.5", "agent.gamma", "[0, 1)"),
        ("agent.gamma=abc", "agent.gamma", "a number"),
        ("total_env_steps=1.5", "total_env_steps", "an integer"),
        ("total_env_steps=0", "total_env_steps", ">= 1"),
        ("agent.nonsense=1", "agent.nonsense", "one of kind"),
        ("nonsense=1", "nonsense", "one of env_id"),
        ("device=gpu", "device", "cpp_standalone"),
        ("agent.kind=ppo", "agent.kind", "dense_actor_critic"),
        ("agent=3", "agent", "table"),
        ("encoding.neurons_per_dim=1", "encoding.neurons_per_dim", ">= 2"),
        ("agent.actor_lr=inf", "agent.actor_lr", "a finite number > 0"),
        ("agent.actor_lr=nan", "agent.actor_lr", "a finite number > 0"),
        ("agent.critic_lr=inf", "agent.critic_lr", "a finite number > 0"),
        ("agent.critic_lr=-nan", "agent.critic_lr", "a finite number > 0"),
        ("dense.init_scale=inf", "dense.init_scale", "a finite number > 0"),
        ("dense.td_error_clip=inf", "dense.td_error_clip", "a finite number >= 0"),
    ],
)
def test_bad_values_name_the_field(override, field, allowed):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    msg = str(info.value)
    assert msg.startswith(field + ":"), f"error should start with the field {field!r}: {msg}"
    assert allowed in msg, f"error should say what is allowed ({allowed!r}): {msg}"
    assert "\n" not in msg, f"error should be one line: {msg!r}"


def test_bad_set_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^--set:"):
        load_config(None, ["no_equals_sign"])
    with pytest.raises(ConfigError, match=r"^--config:"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match=r"^--config: expected a valid TOML file"):
        load_config(bad)


def test_json_round_trip(tmp_path):
    cfg = load_config(None, ["agent.actor_lr=0.123", "seed=4"])
    cfg.to_json(tmp_path / "config.json")
    assert load_config_json(tmp_path / "config.json") == cfg, "config.json does not reload to the same config"


def test_configs_are_frozen():
    cfg = RunConfig()
    with pytest.raises(Exception):
        cfg.seed = 3  # type: ignore[misc]


def test_every_field_is_documented():
    undocumented = [name for name, _, _, doc in describe() if not doc]
    assert not undocumented, f"config fields without a docstring line: {undocumented}"


def test_describe_gives_each_section_its_own_defaults():
    """The world model's network has defaults of its own (300 neurons), not the agent network's 200."""
    defaults = {name: default for name, _, default, _ in describe()}
    assert defaults["network.n_recurrent"] == 200
    assert defaults["world_model.network.n_recurrent"] == RunConfig().world_model.network.n_recurrent == 300


def test_world_model_period_must_equal_the_agents():
    """A spiking world model whose dt x steps differs from the agent's period is refused at load, with the field."""
    with pytest.raises(ConfigError, match=r"world_model\.network\.steps_per_env_step.*agent's period"):
        load_config(CONFIGS / "cartpole_mbrl.toml", ["world_model.network.steps_per_env_step=5"])
    cfg = load_config(
        CONFIGS / "cartpole_mbrl.toml",
        [
            "world_model.network.steps_per_env_step=5",
            "world_model.network.dt_ms=2.0",
            "world_model.network.update_interval_steps=5",
        ],
    )
    assert cfg.world_model.network.dt_ms * cfg.world_model.network.steps_per_env_step == 10.0


def test_from_dict_rejects_wrong_tuple_type():
    with pytest.raises(ConfigError, match=r"^encoding.obs_low: expected a list of numbers"):
        from_dict(RunConfig, {"encoding": {"obs_low": "x"}})


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["network.n_recurrent=30"], "network.n_recurrent"),  # dense agent: the spiking network is unused
        (["agent.kind=spiking_actor_critic", "dense.hidden_units=4"], "dense.hidden_units"),
        (
            ["agent.kind=spiking_actor_critic", "network.update_interval_steps=5"],
            "network.update_interval_steps",
        ),
        (["agent.kind=spiking_actor_critic", "network.beta=0.1"], "network.beta"),  # LIF: no adaptation
        (  # closed-form decay between events uses activity-sparse mode's criterion and counter
            ["agent.kind=spiking_actor_critic", "network.event_driven_traces=true"],
            "network.event_driven_traces",
        ),
        (["encoding.kind=raw", "encoding.width=0.3"], "encoding.width"),
    ],
)
def test_unused_fields_are_rejected_not_ignored(overrides, field):
    with pytest.raises(ConfigError, match=rf"^{field}: expected its default .* it is not used, as "):
        load_config(CONFIGS / "cartpole_dense.toml", overrides)


MB = ["agent.kind=spiking_model_based", "model_based.model=spiking"]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ([*MB, "model_based.dream_chunk=0", "model_based.dream_patience=3"], "model_based.dream_patience"),
        ([*MB, "model_based.model=linear", "model_based.model_patience=2"], "model_based.model_patience"),
        ([*MB, "world_model.periods_per_run=100"], "world_model.periods_per_run"),
        ([*MB, "world_model.termination_weight=3.0"], "world_model.termination_weight"),
        (
            [*MB, "world_model.termination=given", "world_model.termination_positive_weight=2.0"],
            "world_model.termination_positive_weight",
        ),
        ([*MB, "model_based.parallel=true", "model_based.start_states=50"], "model_based.start_states"),
        ([*MB, "model_based.parallel=true", "model_based.learn_on_real=false"], "model_based.learn_on_real"),
    ],
)
def test_fields_the_model_based_cycle_never_reads_are_refused(overrides, field):
    """The closed loop's world model ignores these (see unused_fields): setting one is refused."""
    with pytest.raises(ConfigError, match=rf"^{field}: expected its default .* it is not used, as "):
        load_config(CONFIGS / "cartpole_mbrl.toml", overrides)


def test_fields_the_model_based_cycle_reads_are_accepted():
    config = load_config(
        CONFIGS / "cartpole_mbrl.toml",
        [
            *MB,
            "world_model.termination=learned",
            "world_model.termination_weight=3.0",
            "model_based.start_states=50",
            "world_model.shuffle=false",
            "model_based.dream_chunk=500",
            "model_based.dream_patience=2",
        ],
    )
    assert config.world_model.termination_weight == 3.0 and config.model_based.start_states == 50


def test_event_driven_traces_are_refused_in_fixed_point():
    """Fixed-point traces are rounded at every step: no closed-form decay between events."""
    overrides = [
        "agent.kind=spiking_actor_critic",
        "network.activity_sparse=true",
        "network.event_driven_traces=true",
        "network.numerics=fixed",
    ]
    with pytest.raises(
        ConfigError, match=r"^network.event_driven_traces: expected false with numerics 'fixed'"
    ):
        load_config(CONFIGS / "cartpole_dense.toml", overrides)
    cfg = load_config(CONFIGS / "cartpole_dense.toml", overrides[:3])
    assert cfg.network.event_driven_traces


def test_a_dreamed_stop_return_may_be_negative_and_inf_means_no_stop():
    """Acrobot's returns are negative: a negative stop value is a value, not 'no stop'."""
    base = ["agent.kind=spiking_model_based", "model_based.dream_chunk=100"]
    cfg = load_config(CONFIGS / "cartpole_mbrl.toml", [*base, "model_based.dream_stop_return=-80"])
    assert cfg.model_based.dream_stop_return == -80.0
    assert load_config(CONFIGS / "cartpole_mbrl.toml", base).model_based.dream_stop_return == float("inf")
    for bad in ("nan", "-inf", "true"):
        with pytest.raises(ConfigError, match=r"^model_based.dream_stop_return: expected a number"):
            load_config(CONFIGS / "cartpole_mbrl.toml", [*base, f"model_based.dream_stop_return={bad}"])


def test_default_overrides_put_a_files_section_back_to_its_defaults():
    """The items reset exactly the fields the file sets (nested ones too), so the file loads with the
    spiking world model unused; without them it is refused."""
    from nmbrl_brian.config import default_overrides
    from nmbrl_brian.equations.world_model import WorldModelConfig

    path = Path(__file__).parents[1] / "nmbrl_brian" / "configs" / "acrobot_mbrl.toml"
    items = default_overrides(path, "world_model")
    assert "world_model.min_updates=10000" in items
    assert "world_model.network.n_recurrent=300" in items
    assert "world_model.encoding.neurons_per_dim=12" in items
    with pytest.raises(ConfigError, match="world_model"):
        load_config(path, ["model_based.model=perfect"])
    config = load_config(path, ["model_based.model=perfect", *items])
    assert config.world_model == WorldModelConfig()
    with pytest.raises(ValueError, match="section"):
        default_overrides(path, "env_id")
