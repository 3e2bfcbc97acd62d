"""The node configuration file: the runbook's YAML keys as a strict pydantic model.

Unknown keys and bad values are rejected with the dotted path of the key, so a
typo in `coordination.cluster.gossip_intervall` fails at start-up, not later.
Durations are written like the runbook (`200ms`, `1s`, `5m`) and held as seconds.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from caxton_node import limits
from caxton_node.units import parse_duration, parse_size


class ConfigError(ValueError):
    """The configuration is invalid; the message names each offending key."""


class StartupError(RuntimeError):
    """The node cannot start (a port in use, a data directory that is unusable or locked);
    the message says which and what to do. Like a ConfigError, it exits 2."""


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


def check_address(value: str) -> str:
    """HOST:PORT (or a bare HOST, for the default port); the port must be 1-65535."""
    host, sep, port = value.rpartition(":")
    if sep and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"{value!r} is not HOST:PORT with a port from 1 to 65535")
    return value


Address = Annotated[str, AfterValidator(check_address)]


def _in_bounds(check: Any) -> Any:
    def run(value: Any) -> Any:
        check(value)
        return value
    return AfterValidator(run)


AgentMemory = Annotated[int, BeforeValidator(parse_size), _in_bounds(limits.check_memory)]
AgentDeadline = Annotated[float, BeforeValidator(parse_duration), _in_bounds(limits.check_deadline)]
AgentFuel = Annotated[int | None, _in_bounds(limits.check_fuel)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterConfig(Strict):
    bind_addr: Address = "0.0.0.0:7946"
    advertise_addr: Address | Literal[""] = ""
    seeds: list[Address] = Field(default_factory=list)
    bootstrap_expect: int = Field(default=1, ge=1)
    gossip_interval: Duration = 0.2
    gossip_fanout: int = Field(default=3, ge=1)
    probe_interval: Duration = 1.0
    probe_timeout: Duration = 0.5
    suspicion_multiplier: int = Field(default=4, ge=1)


class PartitionConfig(Strict):
    detection_timeout: Duration = 5.0
    quorum_size: int | None = Field(default=None, ge=1)
    queue_writes: bool = True


class CoordinationConfig(Strict):
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    partition: PartitionConfig = Field(default_factory=PartitionConfig)


class MtlsConfig(Strict):
    enabled: bool = False
    ca_cert: Path | None = None
    node_cert: Path | None = None
    node_key: Path | None = None


class ClusterSecurityConfig(Strict):
    mtls: MtlsConfig = Field(default_factory=MtlsConfig)
    gossip_key_file: Path | None = None


class ApiSecurityConfig(Strict):
    # Bearer token for the HTTP API; without a file the API refuses every call.
    token_file: Path | None = None


class SecurityConfig(Strict):
    cluster: ClusterSecurityConfig = Field(default_factory=ClusterSecurityConfig)
    api: ApiSecurityConfig = Field(default_factory=ApiSecurityConfig)


class AgentDefaults(Strict):
    # at-most-once: the journal commits every 10 ms; at-least-once: a message is
    # committed before the API acknowledges it, and redelivered after a crash.
    delivery: Literal["at-most-once", "at-least-once"] = "at-most-once"
    memory: AgentMemory = 16 * 2**20
    fuel: AgentFuel = None
    deadline: AgentDeadline = 0.01
    queue_capacity: int = Field(default=1024, ge=1)
    max_message_bytes: Size = 64 * 2**10
    # A client mailbox nobody has read or long-polled for this long is removed; what it
    # still held goes to the dead letters (reason mailbox_expired).
    mailbox_idle_expiry: Duration = 600.0
    # Bounded growth (docs/delivery.md, docs/agent-abi.md): dead letters kept per agent and
    # for how long, and how many lines an agent may log per message and per second.
    dead_letters_per_agent: int = Field(default=1000, ge=1, le=1_000_000)
    dead_letter_max_age: Duration = 7 * 86400.0
    log_lines_per_message: int = Field(default=16, ge=1, le=100_000)
    log_lines_per_second: float = Field(default=50.0, gt=0, le=1_000_000)


class NodeConfig(Strict):
    id: str = ""
    data_dir: Path = Path("/var/lib/caxton")
    # Where `emergency stop --dump-to` may write: dump_to names a directory inside it.
    # Empty: <data_dir>/dumps.
    dump_dir: Path | None = None
    api_addr: Address = "0.0.0.0:8080"
    metrics_addr: Address = "0.0.0.0:9090"

    @property
    def dump_root(self) -> Path:
        return self.dump_dir or self.data_dir / "dumps"


class Config(Strict):
    node: NodeConfig = Field(default_factory=NodeConfig)
    coordination: CoordinationConfig = Field(default_factory=CoordinationConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    agents: AgentDefaults = Field(default_factory=AgentDefaults)


def _describe(err: ValidationError) -> str:
    problems = []
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key")
        else:
            problems.append(f"{key}: {item['msg']}")
    return "; ".join(problems)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: Any, env: dict[str, str]) -> Any:
    """Replaces ${VAR} in every string of `value` (one config serves every pod of a StatefulSet:
    `node.id: ${POD_NAME}`); an unset variable is an error, not an empty string."""
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"the configuration refers to ${{{name}}}, which is not set")
            return env[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def load_config(data: dict[str, Any] | None, env: dict[str, str] | None = None) -> Config:
    try:
        return Config.model_validate(expand_env(data or {}, dict(os.environ) if env is None else env))
    except ValidationError as err:
        raise ConfigError(f"invalid configuration: {_describe(err)}") from None


def load_config_file(path: Path) -> Config:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read configuration {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return load_config(raw)


def split_host_port(addr: str, default_port: int) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host:
        return addr, default_port
    return host.strip("[]"), int(port)
