"""Service settings: ``HEBB_``-prefixed environment variables, overridable by ``hebb serve`` flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.stores import DEFAULT_STORE_URL

Scope = Literal["read", "write"]
Role = Literal["all", "learner", "predictor"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEBB_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="interface to bind")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    store: str = Field(DEFAULT_STORE_URL, description="store URL: file://DIR (embedded), redis://host:port/db "
                                                     "or memory:// (nothing survives a restart)")
    checkpoint_every_samples: int = Field(10_000, ge=1, description="checkpoint a model after this many samples")
    checkpoint_every_seconds: float = Field(60.0, gt=0, description="checkpoint a changed model at least this often")
    store_retry_after_seconds: int = Field(1, ge=1, description="Retry-After of a 503 while the store is down")
    api_keys: str = Field("", description='"key:scope,..." with scope read or write; empty disables auth')
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="larger request bodies get 413")
    prediction_retention: int = Field(100_000, ge=0, description="stored predictions kept per model (newest)")
    prediction_ttl_seconds: float = Field(3600.0, gt=0, description="stored predictions expire after this")
    seen_ids_window: int = Field(1_000_000, ge=0, description="sample ids remembered per model for idempotency")
    learn_coalesce_samples: int = Field(1024, ge=1, description="queued samples the learner merges into one call")
    learner_nice: int = Field(10, ge=0, le=19, description="nice increment of learner threads, so request "
                              "handling gets the CPU first when cores are contended (0: off)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = Field(True, description="one structured log line per request")
    workers: int = Field(1, ge=1, le=1, description="processes; models live in memory, so exactly 1")
    # scale-out roles (docs/deploy.md); learner and predictor share the models through a Redis store
    role: Role = Field("all", description="all: learn and predict in one process; learner: own models by Redis "
                                          "lease (standby otherwise); predictor: serve published models, read-only")
    lease_ttl_seconds: float = Field(5.0, gt=0.2, description="learner role: a model's lease expires this long "
                                                              "after its owner stops renewing it")
    publish_every_seconds: float = Field(1.0, gt=0, description="learner role: publish a changed model's serving "
                                                                "state to predictors this often")
    learner_max_models: int = Field(0, ge=0, description="learner role: take over at most this many models "
                                                         "(0: no limit); shards models across learners")

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _roles_share_redis(self):
        if self.role != "all" and not self.store.startswith("redis://"):
            raise ValueError(f"role {self.role!r} shares models through Redis: it needs a redis:// store, "
                             f"not {self.store!r}")
        return self

    def api_key_scopes(self) -> dict[str, Scope]:
        """Parse ``api_keys``; ValueError names the bad entry."""
        return parse_api_keys(self.api_keys)


def parse_api_keys(spec: str) -> dict[str, Scope]:
    """``"k1:write,k2:read"`` → ``{"k1": "write", "k2": "read"}``.

    >>> parse_api_keys("k1:write, k2:read")
    {'k1': 'write', 'k2': 'read'}
    >>> parse_api_keys("")
    {}
    """
    keys: dict[str, Scope] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, scope = entry.rpartition(":")
        if not sep or not key or scope not in ("read", "write"):
            raise ValueError(f"HEBB_API_KEYS entry {entry!r} must be KEY:read or KEY:write")
        keys[key] = scope  # type: ignore[assignment]
    return keys
