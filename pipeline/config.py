"""Settings: packaged defaults + config.yaml + environment overrides → one frozen Settings.

Unknown or mistyped keys are errors that name the key, its place in the file and the valid keys.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError, Location

ENV_PREFIX = "COMPLIANCE_"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceEntry(_Model):
    path: str
    format: str
    # Filled in where the format does not carry them (Qiniu listings lack bucket and account,
    # nginx logs lack the domain).
    bucket: str | None = None
    account_id: str | None = None
    domain: str | None = None
    # How the files' bytes are text: utf-8, gb18030 / gbk, utf-16 (by its BOM), or auto.
    encoding: Literal["utf-8", "gb18030", "gbk", "utf-16", "auto"] = "utf-8"


class Sources(_Model):
    objects: tuple[SourceEntry, ...] = ()
    logs: tuple[SourceEntry, ...] = ()
    icp: tuple[SourceEntry, ...] = ()
    licences: tuple[SourceEntry, ...] = ()
    bindings: tuple[SourceEntry, ...] = ()
    streams: tuple[SourceEntry, ...] = ()


class DaskSettings(_Model):
    scheduler: str = "local"
    workers: int = Field(2, ge=1)
    retries: int = Field(2, ge=0)

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        if v != "local" and "://" not in v:
            raise ValueError("must be 'local' or a scheduler address such as tcp://host:8786")
        return v


class ScanSettings(_Model):
    max_evidence: int = Field(20, ge=1)
    progress: Literal["auto", "always", "never"] = "auto"
    auto_resolve: bool = False
    # a name registered in pipeline.matchers.keyword_engine.BACKENDS ("reference" is for tests only)
    keyword_backend: Literal["pyahocorasick", "ahocorasick-rs"] = "pyahocorasick"
    batch_rows: int = Field(200_000, ge=1)
    part_bytes: int = Field(64 << 20, ge=1 << 10)
    noisy_rule_share: float = Field(0.01, gt=0, le=1)


class RetentionSettings(_Model):
    days: int = Field(180, ge=1)
    below_floor_reason: str | None = None
    timezone: str = "Asia/Shanghai"   # zone of bare dates and naive times in query windows
    ingest_on_scan: bool = True       # `compliance scan` also ingests the log files it reads


class EnforcementCaps(_Model):
    # Enforcement actions (not notices, not undos) one plan may hold, in total and per account.
    per_run: int = Field(20, ge=1)
    per_account: int = Field(3, ge=1)


class PolicyEntry(_Model):
    """One row of the penalty table: the first entry matching a case's category and severity wins."""

    categories: tuple[str, ...] = ("*",)   # shell-style globs over category names
    severities: tuple[Literal["low", "medium", "high", "critical"], ...] = ("low", "medium", "high", "critical")
    level: Literal["light", "medium", "severe"]
    mode: Literal["auto", "review", "notice"]
    notice_days: int | None = Field(None, ge=1)   # notice mode: days before enforcement (default: notice_days)


class NoticeSettings(_Model):
    template: str | None = None            # path to a string.Template file; None: the packaged one
    provider: str = "码尚云"
    appeal: str = "码尚云控制台工单系统"


class EnforcementSettings(_Model):
    endpoint: str | None = None
    secret_env: str = "ENFORCEMENT_SECRET"
    timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(4, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    notice_days: int = Field(3, ge=1)
    caps: EnforcementCaps = EnforcementCaps()
    policy: tuple[PolicyEntry, ...] = ()
    notice: NoticeSettings = NoticeSettings()

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: str) -> str:
        # COMPLIANCE_* variables are read as config overrides, so the secret cannot live there.
        if not v or v.upper().startswith(ENV_PREFIX):
            raise ValueError(f"must name an environment variable not starting with {ENV_PREFIX}")
        return v


SIGMA_FIELDS: dict[str, str | None] = {
    # Sigma field → canonical log field; None: no log format carries it (the field is NULL).
    "c-ip": "client_ip", "cs-method": "method", "cs-uri-query": "uri", "cs-uri-stem": "path",
    "sc-status": "status", "sc-bytes": "bytes_sent", "cs-referer": "referer", "cs-user-agent": "user_agent",
    "cs-username": "username", "cs-host": "host", "cs-version": None,
}
# Per log format, what differs from SIGMA_FIELDS. Tencent CDN lines carry the requested host name in
# their domain field (no host column); elsewhere `domain` may be configured, so it is no Host header.
SIGMA_FORMATS: dict[str, dict[str, str | None]] = {"tencent-cdn": {"cs-host": "domain"}}


Severity = Literal["low", "medium", "high", "critical"]
_LEVELS: dict[str, Severity] = {"informational": "low", "low": "low", "medium": "medium", "high": "high",
                                "critical": "critical"}


def _log_columns(mapping: dict[str, str | None]) -> dict[str, str | None]:
    """Targets of a Sigma field mapping must be canonical log columns (or null): a typo is an error."""
    from .records import LOGS, PROVENANCE

    for sigma_field, target in mapping.items():
        if target is not None and (target not in LOGS or target in PROVENANCE):
            valid = ", ".join(k for k in LOGS if k not in PROVENANCE)
            raise ValueError(f"{sigma_field}: {target!r} is not a log field (valid: {valid}, or null)")
    return mapping


class SigmaLogsource(_Model):
    """How Sigma rules of one logsource become rules of this project."""

    category: str | None = None            # logsource fields this entry applies to (None: any)
    product: str | None = None
    service: str | None = None
    id_prefix: str = "sigma.web"           # rule ids: <id_prefix>.<file name>
    clause: str = "3.1.3.7"
    rule_category: str = "attack_web"
    subject: str = "client_ip"
    fields: dict[str, str | None] = Field(default_factory=lambda: dict(SIGMA_FIELDS))
    # Log format name → Sigma field → canonical field, over `fields` for records of that format.
    formats: dict[str, dict[str, str | None]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in SIGMA_FORMATS.items()})

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, str | None]) -> dict[str, str | None]:
        return _log_columns(v)

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: dict[str, dict[str, str | None]]) -> dict[str, dict[str, str | None]]:
        from .sources import logs as _registers  # noqa: F401  (fills the log-format registry)
        from .sources.base import LOG_FORMATS

        for name, mapping in v.items():
            if name not in LOG_FORMATS:
                raise ValueError(f"{name!r} is not a log format (valid: {', '.join(LOG_FORMATS.names())})")
            _log_columns(mapping)
        return v


class SigmaSettings(_Model):
    folders: tuple[str, ...] = ("rules/sigma",)
    level_severity: dict[str, Severity] = Field(default_factory=lambda: dict(_LEVELS))
    logsources: tuple[SigmaLogsource, ...] = (SigmaLogsource(category="webserver"),)
    unsupported: Literal["skip", "error"] = "skip"


class WebSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    page_size: int = Field(50, ge=1, le=1000)
    session_hours: float = Field(12, gt=0)
    claim_minutes: float = Field(30, gt=0)
    login_max_failures: int = Field(5, ge=1)
    login_window_s: float = Field(900, gt=0)
    secret_env: str = "WEB_SESSION_SECRET"
    proxy_user_header: str | None = None
    secure_cookies: bool = False
    drafts: str = "drafts"
    counts_ttl_s: float = Field(15, ge=0)

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: str) -> str:
        return EnforcementSettings._secret_env(v)


class LoggingSettings(_Model):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"


class Settings(_Model):
    rules: str
    state_dir: str
    # Folders besides `rules` that keywords_file / hash_list files may lie in.
    rule_list_dirs: tuple[str, ...] = ()
    case_store: str | None = None
    sources: Sources = Sources()
    dask: DaskSettings = DaskSettings()
    scan: ScanSettings = ScanSettings()
    retention: RetentionSettings = RetentionSettings()
    logging: LoggingSettings = LoggingSettings()
    enforcement: EnforcementSettings = EnforcementSettings()
    sigma: SigmaSettings = SigmaSettings()
    web: WebSettings = WebSettings()
    # Folder of the config file: relative paths in it are relative to this.
    base_dir: str = "."

    def resolve(self, path: str) -> str:
        """A path from the config, made absolute against the config file's folder (URLs untouched)."""
        if "://" in path or os.path.isabs(path):
            return path
        return os.path.normpath(os.path.join(self.base_dir, path))

    @property
    def rules_dir(self) -> str:
        return self.resolve(self.rules)

    @property
    def sigma_folders(self) -> tuple[str, ...]:
        return tuple(self.resolve(f) for f in self.sigma.folders)

    @property
    def rule_list_paths(self) -> tuple[str, ...]:
        return tuple(self.resolve(p) for p in self.rule_list_dirs)

    @property
    def state_path(self) -> Path:
        return Path(self.resolve(self.state_dir))

    @property
    def scheduler_address(self) -> str | None:
        """The scheduler to connect to, or None to start a LocalCluster."""
        env = os.environ.get("DASK_SCHEDULER_ADDRESS")
        if env:
            return env
        return None if self.dask.scheduler == "local" else self.dask.scheduler


def _defaults() -> dict[str, Any]:
    text = resources.files("pipeline").joinpath("defaults.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _is_override(name: str) -> bool:
    """COMPLIANCE_CONFIG names the file, and COMPLIANCE_TEST_* belong to the test suite: not settings."""
    return (name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG"
            and not name.startswith(ENV_PREFIX + "TEST_"))


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """COMPLIANCE_SECTION__KEY=value → {"section": {"key": value}} (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not _is_override(name):
            continue
        keys = name[len(ENV_PREFIX):].lower().split("__")
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = yaml.safe_load(raw) if raw else raw
    return out


def _env_variable(environ: dict[str, str], keys: tuple[Any, ...]) -> str | None:
    """The COMPLIANCE_* variable that set the setting at ``keys`` (or below it), if one did."""
    path = [str(k).lower() for k in keys if not isinstance(k, int)]
    for name in environ:
        if not _is_override(name):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if parts[:len(path)] == path or path[:len(parts)] == parts:
            return name
    return None


def _node_location(path: str, root: yaml.Node | None, keys: tuple[Any, ...]) -> Location:
    """Best-effort file:line:column of a key path inside a composed YAML document."""
    node = root
    loc_node = root
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == key:
                    loc_node, nxt = k, v
                    break
            if nxt is None:
                break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            loc_node = node
        else:
            break
    if loc_node is None:
        return Location(path)
    return Location(path, loc_node.start_mark.line + 1, loc_node.start_mark.column + 1)


def _valid_keys(model: type[BaseModel], keys: tuple[Any, ...]) -> list[str]:
    """The field names valid at the place ``keys`` points to (for 'unknown key' messages)."""
    current: Any = model
    for key in keys[:-1]:
        if isinstance(key, int):
            continue
        field = current.model_fields.get(key) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        current = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [n for n in current.model_fields if n != "base_dir"]
    return []


def default_config_path() -> str | None:
    """The config file used when --config is not given: $COMPLIANCE_CONFIG, else ./config.yaml."""
    env = os.environ.get(ENV_PREFIX + "CONFIG")
    if env:
        return env
    return "config.yaml" if os.path.exists("config.yaml") else None


def load_settings(path: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Load settings; ``path`` None means defaults only (plus environment overrides)."""
    environ = dict(os.environ if environ is None else environ)
    data = _defaults()
    root_node = None
    shown = path or "<defaults>"
    base_dir = os.getcwd()
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}", hint="pass --config PATH or run from the project folder") from None
        except OSError as exc:   # permission denied, a folder, ...
            raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}",
                              hint="let this user read it (check its permissions)") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"the config file is not UTF-8 ({exc.reason} at byte {exc.start})",
                              location=Location(path)) from None
        from .rules.limits import check_yaml   # aliases, depth and value length bounded before expanding

        if (bound := check_yaml(path, text)) is not None:
            raise ConfigError(bound.message, location=bound.location, hint=bound.hint)
        try:
            root_node = yaml.compose(text)
            user = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            loc = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path)
            raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", location=loc) from None
        if not isinstance(user, dict):
            raise ConfigError("the config must be a mapping of settings", location=Location(path, 1, 1))
        data = _merge(data, user)
        base_dir = str(Path(path).resolve().parent)
    data = _merge(data, _env_overrides(environ))
    data["base_dir"] = base_dir
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        # A misspelt key shows up twice (unknown key, missing key): name the misspelling.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        err = errors[0]
        keys = tuple(err["loc"])
        dotted = ".".join(str(k) for k in keys)
        loc = _node_location(shown, root_node, keys) if root_node is not None else Location(shown)
        from_env = _env_variable(environ, keys)
        if from_env:   # the value came from the environment, not from the file
            loc = Location(f"environment variable {from_env}")
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(Settings, keys)
            raise ConfigError(f"unknown setting {dotted!r}", location=loc,
                              hint=f"valid keys here: {', '.join(valid)}") from None
        if err["type"] == "missing":
            raise ConfigError(f"setting {dotted!r} is required", location=loc) from None
        raise ConfigError(f"setting {dotted!r}: {err['msg']}", location=loc,
                          hint="see pipeline/defaults.yaml for every setting and its meaning") from None
