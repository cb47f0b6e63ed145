"""Run configuration: one frozen dataclass tree, loaded from TOML and ``--set`` overrides.

A run is described by :class:`RunConfig`. Its top level holds what every agent
shares (environment, seed, step budget, evaluation, device); nested sections hold
the settings of one component each and live next to that component's equations:

=========== ================================================================= =================
section     dataclass                                                         used by
=========== ================================================================= =================
agent       :class:`nmbrl_brian.equations.actor_critic.AgentConfig`           every agent
encoding    :class:`nmbrl_brian.equations.population_code.EncodingConfig`     every agent
dense       :class:`nmbrl_brian.agents.dense_actor_critic.DenseNetworkConfig` dense agent
network     :class:`nmbrl_brian.equations.eprop_neurons.SpikingNetworkConfig` spiking networks
world_model :class:`nmbrl_brian.equations.world_model.WorldModelConfig`       model-based agent
model_based :class:`nmbrl_brian.agents.config.ModelBasedConfig`               model-based agent
=========== ================================================================= =================

Each section's dataclass sits beside the maths it parameterises and says, with its
``unused_fields`` method, which of its fields a run leaves unused (composed by :func:`unused_fields`).

Every value is checked on load; a bad key, type or value raises
:class:`~nmbrl_brian.errors.ConfigError` with a one-line message naming the dotted
field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmbrl_brian.agents.config import EQUATION_ENVIRONMENTS, ModelBasedConfig
from nmbrl_brian.agents.dense_actor_critic import DenseNetworkConfig
from nmbrl_brian.devices import DEVICES
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.equations.world_model import WorldModelConfig
from nmbrl_brian.errors import ConfigError

#: Values of ``environment``.
ENVIRONMENTS = ("auto", "gymnasium", "equations")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run."""

    env_id: str = "CartPole-v1"
    """Gymnasium id of the real environment (1-D Box observations, Discrete actions)."""
    seed: int = 0
    """Seed of the agent, the training episodes and the evaluation episodes."""
    total_env_steps: int = 200_000
    """Real environment steps to train for."""
    eval_every: int = 5_000
    """Evaluate the greedy policy every this many environment steps."""
    eval_schedule: tuple[int, ...] = ()
    """Explicit evaluation points (env steps, increasing); after the last one, every ``eval_every``
    steps. A model-based agent runs one cycle between two evaluations."""
    eval_episodes: int = 20
    """Episodes per evaluation (greedy actions, seeds disjoint from training)."""
    checkpoint_every: int = 20_000
    """Save a resumable checkpoint every this many environment steps (0: only at the end)."""
    stop_at_return: float = math.inf
    """Stop training at the first evaluation whose mean return reaches this value (``inf``: train
    for ``total_env_steps``). Sample-efficiency studies use it to end a solved seed early; the run
    then ends with that evaluation and the kept-policy row."""
    device: str = "runtime"
    """Brian2 target: ``runtime`` (cython, numpy fallback), ``cpp_standalone`` or ``cuda_standalone``."""
    environment: str = "auto"
    """How a spiking agent's closed loop runs the environment: ``gymnasium`` (one network operation,
    runtime only), ``equations`` (the environment as Brian2 equations: CartPole) or ``auto``
    (equations on standalone devices and for the model-based agent on CartPole, gymnasium otherwise)."""
    periods_per_run: int = 2000
    """Environment steps (periods) per Brian2 run of a spiking closed loop: a standalone binary
    simulates exactly this many per execution, runtime runs at most this many."""
    energy_profiles: tuple[str, ...] = ()
    """TOML files of energy profiles of your own (the format of ``nmbrl_brian/energy_profiles.toml``),
    priced in ``energy.csv`` beside the shipped ones; paths relative to the working directory."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """The actor-critic learning rule and which agent to build."""
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    """How observations are encoded for the agent."""
    dense: DenseNetworkConfig = field(default_factory=DenseNetworkConfig)
    """The dense baseline's network (used when ``agent.kind = "dense_actor_critic"``)."""
    network: SpikingNetworkConfig = field(default_factory=SpikingNetworkConfig)
    """The spiking network (used by the spiking agents)."""
    model_based: ModelBasedConfig = field(default_factory=ModelBasedConfig)
    """The model-based cycle (used when ``agent.kind = "spiking_model_based"``)."""
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    """The spiking world model (used when ``model_based.model = "spiking"``); its seed is the run's."""

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ConfigError("seed", "an integer >= 0", self.seed)
        if self.total_env_steps < 1:
            raise ConfigError("total_env_steps", "an integer >= 1", self.total_env_steps)
        if self.eval_every < 1:
            raise ConfigError("eval_every", "an integer >= 1", self.eval_every)
        if any(b <= a for a, b in zip((0, *self.eval_schedule), self.eval_schedule)):
            raise ConfigError("eval_schedule", "increasing positive step counts", list(self.eval_schedule))
        if self.eval_episodes < 1:
            raise ConfigError("eval_episodes", "an integer >= 1", self.eval_episodes)
        if self.checkpoint_every < 0:
            raise ConfigError("checkpoint_every", "an integer >= 0", self.checkpoint_every)
        if not isinstance(self.stop_at_return, (int, float)) or self.stop_at_return != self.stop_at_return:
            raise ConfigError("stop_at_return", "a number (inf: never stop early)", self.stop_at_return)
        if self.device not in DEVICES:
            raise ConfigError("device", "one of " + ", ".join(DEVICES), self.device)
        if self.agent.kind == "dense_actor_critic" and self.device != "runtime":
            raise ConfigError(
                "device", "'runtime' for agent.kind='dense_actor_critic' (it runs in NumPy)", self.device
            )
        if self.environment not in ENVIRONMENTS:
            raise ConfigError("environment", "one of " + ", ".join(map(repr, ENVIRONMENTS)), self.environment)
        if self.periods_per_run < 10:
            raise ConfigError("periods_per_run", "an integer >= 10", self.periods_per_run)
        if self.device != "runtime" and self.environment == "gymnasium":
            raise ConfigError(
                "environment",
                f"'equations' or 'auto' on device {self.device} (the gymnasium coupling is a network "
                "operation, which standalone devices drop)",
                self.environment,
            )
        if self.closed_loop_environment == "equations" and self.env_id not in EQUATION_ENVIRONMENTS:
            raise ConfigError(
                "environment" if self.environment == "equations" else "device",
                f"an environment written as Brian2 equations ({', '.join(EQUATION_ENVIRONMENTS)}) for "
                + ("environment='equations'" if self.environment == "equations" else f"device {self.device}"),
                self.env_id if self.environment != "equations" else self.environment,
            )
        if self.agent.kind == "spiking_model_based" and self.model_based.model == "spiking":
            agent_ms = self.network.dt_ms * self.network.steps_per_env_step
            wm = self.world_model.network
            if abs(wm.dt_ms * wm.steps_per_env_step - agent_ms) > 1e-9:
                raise ConfigError(
                    "world_model.network.steps_per_env_step",
                    f"dt_ms * steps_per_env_step = the agent's period ({self.network.dt_ms:g} ms x "
                    f"{self.network.steps_per_env_step} = {agent_ms:g} ms)",
                    f"{wm.steps_per_env_step} (x {wm.dt_ms:g} ms = {wm.dt_ms * wm.steps_per_env_step:g} ms)",
                )
        if self.energy_profiles:
            from nmbrl_brian.energy import load_profiles

            load_profiles(self.energy_profiles)  # one-line ConfigError on a missing or malformed file

        check_unused(self)

    @property
    def closed_loop_environment(self) -> str:
        """``"gymnasium"`` or ``"equations"``: the environment part a spiking agent runs with."""
        if self.environment != "auto":
            return self.environment
        if self.agent.kind == "spiking_model_based" and self.env_id in EQUATION_ENVIRONMENTS:
            return "equations"  # CartPole: its real environment and the dream as Brian2 code, any device
        return "gymnasium" if self.device == "runtime" else "equations"

    @property
    def run_name_stem(self) -> str:
        """``{env_id}__{agent}__{seed}``; the trainer appends a timestamp."""
        return f"{self.env_id}__{self.agent.kind}__{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain nested dicts (JSON/TOML serialisable)."""
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path) -> None:
        """Write the resolved configuration to ``path`` as JSON (atomically)."""
        from nmbrl_brian.results import atomic_write

        text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write(path, lambda f: f.write(text.encode()))


# --------------------------------------------------------------------------------------
# Fields a run does not use must stay at their defaults (never silently ignored)
# --------------------------------------------------------------------------------------


def unused_fields(config: RunConfig) -> dict[str, str]:
    """The dotted fields that ``config``'s components do not use, each with the reason."""
    unused: dict[str, str] = {}
    if config.agent.kind != "spiking_model_based":
        for f in dataclasses.fields(ModelBasedConfig):
            unused[f"model_based.{f.name}"] = f"agent.kind is {config.agent.kind!r} (not model-based)"
    if config.agent.kind == "dense_actor_critic":
        for f in dataclasses.fields(SpikingNetworkConfig):
            unused[f"network.{f.name}"] = (
                "agent.kind is 'dense_actor_critic' (the network section is the spiking agent's)"
            )
        for name in ("environment", "periods_per_run"):
            unused[name] = "agent.kind is 'dense_actor_critic' (a NumPy agent has no closed loop)"
    else:
        for f in dataclasses.fields(DenseNetworkConfig):
            unused[f"dense.{f.name}"] = (
                "agent.kind is 'spiking_actor_critic' (the dense section is the NumPy agent's)"
            )
        unused.update({f"network.{k}": v for k, v in config.network.unused_fields().items()})
        unused["network.update_interval_steps"] = (
            "the actor-critic updates its weights once per environment step"
        )
        unused["network.readout_learning_rate"] = (
            "the actor-critic's readout step sizes are agent.actor_lr and agent.critic_lr"
        )
    spiking_model = config.agent.kind == "spiking_model_based" and config.model_based.model == "spiking"
    unused.update({f"world_model.{k}": v for k, v in config.world_model.unused_fields(spiking_model).items()})
    if config.agent.kind == "spiking_model_based" and config.model_based.parallel:
        unused["model_based.start_states"] = (
            "model_based.parallel dreams from all real states (the dreamer gets every one)"
        )
        unused["model_based.learn_on_real"] = (
            "with model_based.parallel the acting process learns nothing (the dreamer learns)"
        )
    if config.agent.kind == "spiking_model_based":
        mb = config.model_based
        if mb.model != "spiking" or mb.model_patience == 0:
            unused["model_based.model_tolerance"] = (
                "model_based.model_patience is 0 or no spiking world model"
            )
        if mb.model != "spiking":
            unused["model_based.model_patience"] = "no spiking world model is fitted (model_based.model)"
        if mb.dream_chunk == 0:
            for name in (
                "dream_eval_episodes",
                "dream_stop_return",
                "dream_patience",
                "keep_best_in_dream",
                "dream_eval_first",
            ):
                unused[f"model_based.{name}"] = (
                    "model_based.dream_chunk is 0 (one dream a cycle, no dreamed evaluation)"
                )
    unused.update({f"encoding.{k}": v for k, v in config.encoding.unused_fields().items()})
    return unused


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def default_overrides(path: str | Path, section: str) -> list[str]:
    """``--set`` items that put every field of ``section`` that the config file at ``path`` sets
    back to its default: how a run reuses a file whose section it does not use (for example
    ``model_based.model = "perfect"`` with a file that tunes the spiking ``world_model``, which
    :func:`check_unused` would refuse)."""
    names = {f.name: f for f in dataclasses.fields(RunConfig)}
    if section not in names or names[section].default_factory is dataclasses.MISSING:
        raise ValueError(f"section: expected a section of the config file, got {section!r}")
    items: list[str] = []

    def walk(node: dict, keys: list[str], default: Any) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, [*keys, key], getattr(default, key))
            else:
                items.append(f"{'.'.join([*keys, key])}={json.dumps(getattr(default, key))}")

    table = tomllib.loads(Path(path).read_text()).get(section, {})
    walk(table, [section], names[section].default_factory())
    return items


def check_unused(config: RunConfig) -> None:
    """Raise :class:`ConfigError` for a field set to a non-default value that the run does not use."""
    default_config = RunConfig.__new__(RunConfig)  # defaults without the checks of __post_init__
    for f in dataclasses.fields(RunConfig):
        object.__setattr__(
            default_config,
            f.name,
            f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default,
        )
    for path, reason in unused_fields(config).items():
        default = _get(default_config, path)
        value = _get(config, path)
        if value != default:
            raise ConfigError(path, f"its default {default!r}: it is not used, as {reason}", value)


# --------------------------------------------------------------------------------------
# Building dataclasses from nested dicts, with one-line errors
# --------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        (inner, _) = typing.get_args(tp)
        return f"a list of {_type_name(inner).removeprefix('a ').removeprefix('an ')}s"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, _type_name(tp), value)
        return tuple(_coerce(v, inner, path) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, "an integer", value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, "a number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, "a string", value)
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {path}")  # pragma: no cover


def from_dict(cls: type, data: dict[str, Any], prefix: str = "", base: Any = None) -> Any:
    """Build the frozen dataclass ``cls`` from nested dicts, validating every key and type.

    Parameters
    ----------
    cls : type
        A dataclass type, e.g. :class:`RunConfig`.
    data : dict
        Values by field name; nested dataclass fields take nested dicts.
    prefix : str
        Dotted path of ``cls`` inside the whole config, for error messages.
    base : dataclass instance, optional
        The values ``data`` changes (default: ``cls``'s own defaults).

    Raises
    ------
    ConfigError
        On an unknown key, a wrong type or a value the dataclass rejects.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(path, "a known key: one of " + ", ".join(fields), note="unknown key")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(path, f"a table of {tp.__name__} settings", value)
            # a nested section starts from its default in the parent (e.g. the world model's network)
            spec = fields[key]
            child = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else None
            if base is not None:
                child = getattr(base, key)
            kwargs[key] = from_dict(tp, value, prefix=f"{path}.", base=child)
        else:
            kwargs[key] = _coerce(value, tp, path)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value``; the value is read as a TOML value, else as a bare string."""
    if "=" not in item:
        raise ConfigError("--set", "key=value with a dotted key, e.g. agent.gamma=0.98", item)
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError("--set", "key=value with a dotted key, e.g. agent.gamma=0.98", item)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def set_nested(data: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``data[keys[0]][keys[1]]... = value``, creating the tables on the way.

    Raises
    ------
    ConfigError
        Naming the dotted key if a step on the way is a value, not a table.
    """
    node = data
    for i, k in enumerate(keys[:-1]):
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(keys[: i + 1]), "a section (table), not a value", child)
        node = child
    node[keys[-1]] = value


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    **top_level: Any,
) -> RunConfig:
    """Resolve a :class:`RunConfig` from a TOML file, ``--set`` overrides and keyword values.

    Later sources win: defaults < TOML file < ``overrides`` < ``top_level`` keywords
    whose value is not None (the CLI's ``--seed`` and ``--device``).

    Parameters
    ----------
    path : str or Path, optional
        A TOML file whose tables mirror :class:`RunConfig`'s sections.
    overrides : list of str
        ``"dotted.key=value"`` items; values are TOML literals or bare strings.
    **top_level
        Top-level fields, e.g. ``seed=3``.

    Raises
    ------
    ConfigError
        On an unreadable file or any invalid key, type or value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("--config", "an existing TOML file", str(path))
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", "a valid TOML file", str(path), note=str(exc)) from exc
    for item in overrides:
        keys, value = parse_override(item)
        set_nested(data, keys, value)
    for key, value in top_level.items():
        if value is not None:
            data[key] = value
    return from_dict(RunConfig, data)


def load_config_json(path: str | Path) -> RunConfig:
    """Load a resolved ``config.json`` written by :meth:`RunConfig.to_json` (used by ``--resume``).

    Raises
    ------
    ConfigError
        If the file is not a JSON object, or on any invalid key, type or value.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(str(path), "a readable JSON config", note=" ".join(str(exc).split())) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "a JSON object of config fields", type(data).__name__)
    return from_dict(RunConfig, data)


#: Fields ``nmbrl run --resume`` may change with ``--set``: neither changes what has been learnt.
RESUME_OVERRIDES = ("total_env_steps", "checkpoint_every", "stop_at_return")


def apply_resume_overrides(config: RunConfig, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    """Apply ``--set`` items to a resumed run's config; only :data:`RESUME_OVERRIDES` may change.

    Raises
    ------
    ConfigError
        Naming the key if it is not one of :data:`RESUME_OVERRIDES`, or on a bad value.
    """
    data = config.to_dict()
    for item in overrides:
        keys, value = parse_override(item)
        if ".".join(keys) not in RESUME_OVERRIDES:
            raise ConfigError(
                f"--set {'.'.join(keys)}",
                "only "
                + " or ".join(RESUME_OVERRIDES)
                + " with --resume (the rest of a run's config is fixed)",
            )
        set_nested(data, keys, value)
    return from_dict(RunConfig, data)


def describe(
    cls: type = RunConfig, prefix: str = "", defaults: Any = None
) -> list[tuple[str, str, Any, str]]:
    """List ``(dotted_name, type, default, doc)`` for every field, reading field docstrings.

    ``defaults`` is the instance whose values are the defaults (a section's own default
    factory may differ from its class's defaults, e.g. the world model's network).

    The documentation of a field is the string literal directly under it in the
    class body, as in CleanRL; this reads it from the source with :mod:`ast`.
    """
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    except (OSError, TypeError):  # pragma: no cover - source not available
        pass
    hints = typing.get_type_hints(cls)
    rows: list[tuple[str, str, Any, str]] = []
    default_obj = cls() if defaults is None else defaults
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, prefix=f"{prefix}{f.name}.", defaults=getattr(default_obj, f.name)))
        else:
            rows.append(
                (f"{prefix}{f.name}", _type_name(tp), getattr(default_obj, f.name), docs.get(f.name, ""))
            )
    return rows
