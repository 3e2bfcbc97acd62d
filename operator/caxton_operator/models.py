"""The custom resources' specs as pydantic models: the one source of truth.

`crdgen.py` turns these into the CRDs' OpenAPI schemas (crds/*.yaml are
generated, and a test fails if they drift); the operator parses specs with the
same models. Rules that span fields or compare with the old object are CEL
(`x-kubernetes-validations`), each with a message that says what to fix.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from caxton_node import limits
from caxton_node.config import parse_duration, parse_size
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

SEMVER = r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$"
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
PERCENT = r"^([0-9]|[1-9][0-9]|100)(\.[0-9]+)?%$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Duration = Annotated[str, Field(pattern=DURATION, description="a duration such as 500ms, 10s, 5m or 2160h")]
Quantity = Annotated[str, Field(pattern=QUANTITY, description="a Kubernetes quantity such as 500m, 512Mi or 1Gi")]
SemVer = Annotated[str, Field(pattern=SEMVER, description="a semantic version such as 1.2.0")]


def rule(expression: str, message: str, *, reason: str = "FieldValueInvalid") -> JsonDict:
    return {"rule": expression, "message": message, "reason": reason}


class Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ObjectRef(Spec):
    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_NAME, description="name in this namespace")]


class KeyRef(ObjectRef):
    key: Annotated[str, Field(min_length=1, max_length=253, description="the key holding the module")]


# -- CaxtonCluster -------------------------------------------------------------------------------------

class Resources(Spec):
    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class Storage(Spec):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule(
        "!has(oldSelf.storageClassName) || (has(self.storageClassName) && "
        "self.storageClassName == oldSelf.storageClassName)",
        "storage.storageClassName is immutable: volumes cannot move between storage classes; "
        "create a new cluster to change it", reason="FieldValueForbidden",
    )]})
    size: Quantity = "1Gi"
    storage_class_name: str | None = Field(default=None, description="omit for the default StorageClass")


class Gossip(Spec):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule(
        "duration(self.probeTimeout) < duration(self.probeInterval)",
        "gossip.probeTimeout must be shorter than gossip.probeInterval",
    )]})
    interval: Duration = "200ms"
    fanout: Annotated[int, Field(ge=1, le=10)] = 3
    probe_interval: Duration = "1s"
    probe_timeout: Duration = "500ms"
    suspicion_multiplier: Annotated[int, Field(ge=1, le=20)] = 4


class Partition(Spec):
    detection_timeout: Duration = "5s"
    queue_writes: bool = True
    quorum_size: Annotated[int, Field(ge=1)] | None = None


class Tls(Spec):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule(
        "duration(self.renewBefore) < duration(self.certDuration)",
        "tls.renewBefore must be shorter than tls.certDuration",
    )]})
    enabled: bool = True
    ca_secret_name: str = Field(default="", description="a Secret with ca.crt and ca.key; empty: the operator's CA")
    cert_duration: Duration = "2160h"
    renew_before: Duration = "720h"


class Rebalance(Spec):
    strategy: Literal["least-loaded", "none"] = "least-loaded"
    threshold: Annotated[str, Field(pattern=PERCENT, description="imbalance that triggers a move, e.g. 20%")] = "20%"
    replace_after: Duration = Field(
        default="30s", description="how long a node may be unreachable before its agents are placed elsewhere")


# -- backups (CaxtonBackup, and CaxtonCluster.spec.bootstrap.fromBackup) ---------------------------------

BACKUP_ID = r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$"
DESTINATION = r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?)(/[^/.][^/]*)*/?$"


class S3Credentials(Spec):
    secret_name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_NAME,
                                      description="a Secret in this namespace")]
    access_key_id_key: str = Field(default="accessKeyId", description="its key holding the access key id")
    secret_access_key_key: str = Field(default="secretAccessKey", description="its key holding the secret key")


class BackupDestination(Spec):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule(
        "!self.path.startsWith('s3://') || (has(self.s3Credentials) && has(self.endpoint))",
        "an s3:// destination needs endpoint and s3Credentials (a Secret with accessKeyId and secretAccessKey)",
    )]})
    path: Annotated[str, Field(pattern=DESTINATION, max_length=1024,
                               description="s3://bucket/prefix/ or pvc://claim-name/sub/dir/")]
    endpoint: Annotated[str, Field(pattern=r"^https?://[^/]+/?$", max_length=512,
                                   description="the S3 API's URL, e.g. https://s3.amazonaws.com")] | None = None
    region: Annotated[str, Field(max_length=64)] = "us-east-1"
    s3_credentials: S3Credentials | None = None


class CaxtonBackupSpec(Spec):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule(
        "self == oldSelf", "a CaxtonBackup's spec is immutable: create a new CaxtonBackup",
        reason="FieldValueForbidden",
    )]})
    cluster_ref: ObjectRef
    destination: BackupDestination
    id: Annotated[str, Field(pattern=BACKUP_ID, description="the backup's id at the destination "
                                                            "(default: this object's name)")] | None = None
    compress: bool = Field(default=False, description="store objects compressed with zstd")
    include_secrets: bool = Field(default=False, description="also store the cluster's CA, gossip key and API "
                                                             "token Secrets (anyone who can read the backup can "
                                                             "then impersonate the cluster)")


class FromBackup(Spec):
    id: Annotated[str, Field(pattern=BACKUP_ID)]
    destination: BackupDestination


class Bootstrap(Spec):
    from_backup: FromBackup | None = Field(default=None, description="restore every node's state from a backup "
                                                                     "of a cluster of the same size")


class CaxtonClusterSpec(Spec):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule(
        "!has(self.partition.quorumSize) || self.partition.quorumSize <= self.replicas",
        "partition.quorumSize cannot exceed replicas",
    ), rule(
        "has(oldSelf.bootstrap) ? (has(self.bootstrap) && self.bootstrap == oldSelf.bootstrap) : !has(self.bootstrap)",
        "bootstrap is immutable: it applies only when the cluster is created", reason="FieldValueForbidden",
    )]})
    replicas: Annotated[int, Field(ge=1, le=100, description="number of nodes")] = 3
    version: SemVer
    image: str = Field(default="ghcr.io/caxton/caxton-node", description="image repository; the tag is the version")
    resources: Resources = Field(default_factory=Resources)
    storage: Storage = Field(default_factory=Storage)
    gossip: Gossip = Field(default_factory=Gossip)
    partition: Partition = Field(default_factory=Partition)
    tls: Tls = Field(default_factory=Tls)
    rebalance: Rebalance = Field(default_factory=Rebalance)
    bootstrap: Bootstrap | None = None


# -- CaxtonUpgrade ---------------------------------------------------------------------------------------

class Canary(Spec):
    duration: Duration = Field(default="10m", description="how long the canary is judged; 0s: no hold")
    max_error_rate: Annotated[str, Field(pattern=PERCENT)] = "1%"
    max_p99_latency: Duration = "10ms"
    min_messages: Annotated[int, Field(
        ge=0, description="messages the canary must handle before its error rate and latency count "
                          "(fewer: the gates are Inconclusive, not passed)")] = 100


class CaxtonUpgradeSpec(Spec):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule(
        "self.clusterRef.name == oldSelf.clusterRef.name",
        "clusterRef is immutable: create a new CaxtonUpgrade for another cluster",
        reason="FieldValueForbidden",
    ), rule(
        "self.version == oldSelf.version",
        "version is immutable: create a new CaxtonUpgrade for another version",
        reason="FieldValueForbidden",
    )]})
    cluster_ref: ObjectRef
    version: SemVer
    canary: Canary = Field(default_factory=Canary)
    batch_size: Annotated[int, Field(ge=1, le=100)] = 1
    auto_rollback: bool = True
    paused: bool = False
    allow_downgrade: bool = Field(default=False, description="allow a version lower than the cluster's")
    restart: bool = Field(default=False, description="restart every node even if the version does not change "
                                                     "(a rolling restart)")
    reason: Annotated[str, Field(max_length=256, description="why: shown in Events")] = ""
    progress_deadline: Duration = Field(
        default="5m", description="how long a pod may take to run the new version before its gate fails")


# -- CaxtonAgent --------------------------------------------------------------------------------------------

class Module(Spec):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule(
        "(has(self.configMapRef) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) + (has(self.url) ? 1 : 0) == 1",
        "module needs exactly one of configMapRef, secretRef or url",
    )]})
    config_map_ref: KeyRef | None = None
    secret_ref: KeyRef | None = None
    url: Annotated[str, Field(pattern=r"^https://", max_length=2048)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the module")]


def _bounded(parse: Any, check: Any) -> AfterValidator:
    def run(value: str) -> str:
        check(parse(value))
        return value
    return AfterValidator(run)


class AgentLimits(Spec):
    # The bounds are the node's own (caxton_node.limits): what the API server admits, the node runs.
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        rule(f"duration(self.deadline) >= duration('{limits.DEADLINE_MIN_TEXT}') && "
             f"duration(self.deadline) <= duration('{limits.DEADLINE_MAX_TEXT}')",
             f"limits.deadline must be between {limits.DEADLINE_MIN_TEXT} and {limits.DEADLINE_MAX_TEXT}"),
        rule(f"quantity(self.memory).compareTo(quantity('{limits.MEMORY_MIN}')) >= 0 && "
             f"quantity(self.memory).compareTo(quantity('{limits.MEMORY_MAX}')) <= 0",
             f"limits.memory must be between {limits.MEMORY_TEXT}"),
    ]})
    memory: Annotated[Quantity, _bounded(parse_size, limits.check_memory)] = "16Mi"
    fuel: Annotated[int, Field(ge=limits.FUEL_MIN, le=limits.FUEL_MAX)] | None = None
    deadline: Annotated[Duration, _bounded(parse_duration, limits.check_deadline)] = "10ms"


class CaxtonAgentSpec(Spec):
    cluster_ref: ObjectRef
    module: Module
    replicas: Annotated[int, Field(ge=1, le=100)] = 1
    limits: AgentLimits = Field(default_factory=AgentLimits)
    priority: Literal["low", "normal", "high"] = "normal"


KINDS: dict[str, type[Spec]] = {
    "CaxtonCluster": CaxtonClusterSpec,
    "CaxtonUpgrade": CaxtonUpgradeSpec,
    "CaxtonAgent": CaxtonAgentSpec,
    "CaxtonBackup": CaxtonBackupSpec,
}


def parse_spec(kind: str, spec: dict[str, Any]) -> Spec:
    return KINDS[kind].model_validate(spec)
