"""Feature-view definitions: a YAML file (the "repo") parsed into frozen pydantic models.

A file holds ``views:``, each with a name, an entity (join key and dtype), features (name,
dtype), a ttl and a batch source (a Parquet or CSV file with an event-timestamp column)::

    views:
      - name: customer_activity
        entity: {join_key: customer_id, dtype: string}
        ttl: 30d
        source: {path: churn.parquet}          # relative to the YAML file, or absolute
        features:
          - {name: support_calls, dtype: int64}

A bad definition fails with one line per problem naming the field, e.g.
``views[0] (customer_activity).features[0].dtype: Input should be 'int64', ...``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sluice.feature_store.errors import InvalidDefinition

NAME = r"^[a-z_][a-z0-9_]{0,62}$"
FeatureDtype = Literal["int64", "float64", "string", "bool"]
EntityDtype = Literal["string", "int64"]
SourceFormat = Literal["parquet", "csv"]
_TTL_PART = re.compile(r"(\d+)([wdhms])")
_TTL_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_ttl(value: str | int) -> int:
    """A duration as whole seconds: an integer, or number+unit groups (w, d, h, m, s).

    >>> parse_ttl("30d"), parse_ttl("1d12h"), parse_ttl("90m"), parse_ttl(3600)
    (2592000, 129600, 5400, 3600)
    """
    if isinstance(value, bool):
        raise ValueError("ttl must be a duration such as 30d, 12h or 3600, not a boolean")
    if isinstance(value, int):
        seconds = value
    else:
        text = value.strip().replace(" ", "")
        if text.isdigit():
            seconds = int(text)
        else:
            parts = _TTL_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"ttl {value!r} is not a duration: use e.g. 30d, 12h, 1d12h, 90m")
            seconds = sum(int(n) * _TTL_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError("ttl must be positive (values older than ttl are OUTSIDE_MAX_AGE)")
    return seconds


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Entity(_Model):
    """What a view is keyed by: the join key column and its type."""

    join_key: str = Field(pattern=NAME)
    dtype: EntityDtype = "string"


class Feature(_Model):
    name: str = Field(pattern=NAME)
    dtype: FeatureDtype


class Source(_Model):
    """The batch (offline) source: a Parquet or CSV file with an event-timestamp column."""

    path: str
    """Absolute after loading; in YAML relative to the file's folder, or absolute."""
    timestamp_field: str = "event_timestamp"
    format: SourceFormat | None = None
    """Parquet or CSV; by default from the file's suffix (.parquet / .pq / .csv)."""

    @model_validator(mode="after")
    def _format_known(self) -> Source:
        if self.format is None and _suffix_format(self.path) is None:
            raise ValueError(
                f"cannot tell the format of {self.path!r} from its suffix: "
                "name it .parquet or .csv, or set source.format"
            )
        return self

    @property
    def file_format(self) -> SourceFormat:
        fmt = self.format or _suffix_format(self.path)
        assert fmt is not None  # checked by the validator
        return fmt


def _suffix_format(path: str) -> SourceFormat | None:
    suffix = Path(path).suffix.lower()
    return "parquet" if suffix in (".parquet", ".pq") else "csv" if suffix == ".csv" else None


class FeatureView(_Model):
    """A named group of features of one entity, read and written together."""

    name: str = Field(pattern=NAME)
    entity: Entity
    features: tuple[Feature, ...]
    ttl: int
    """Seconds: a value older than this is OUTSIDE_MAX_AGE online and not joined offline."""
    source: Source
    description: str = ""

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> int:
        if not isinstance(value, str | int):
            raise ValueError("ttl must be a duration such as 30d, 12h or 3600")
        return parse_ttl(value)

    @model_validator(mode="after")
    def _names_distinct(self) -> FeatureView:
        if not self.features:
            raise ValueError("features: list at least one feature (name, dtype)")
        seen: set[str] = set()
        reserved = {self.entity.join_key, self.source.timestamp_field}
        for feature in self.features:
            if feature.name in seen:
                raise ValueError(f"feature {feature.name!r} is listed twice")
            if feature.name in reserved:
                raise ValueError(
                    f"feature {feature.name!r} has the name of the join key or timestamp field"
                )
            seen.add(feature.name)
        return self

    @cached_property
    def feature_index(self) -> dict[str, int]:
        return {f.name: i for i, f in enumerate(self.features)}

    @cached_property
    def schema_id(self) -> str:
        """8 hex digits naming the packed layout (join key, feature names, dtypes, order).

        Part of every online key, so a changed feature list never decodes old values: they
        become unreachable and expire by TTL, and the view must be materialised again.
        """
        shape = [
            self.entity.join_key,
            self.entity.dtype,
            [(f.name, f.dtype) for f in self.features],
        ]
        return hashlib.sha256(orjson.dumps(shape)).hexdigest()[:8]

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> FeatureView:
        return cls.model_validate(orjson.loads(raw))


class Repo(_Model):
    """The views of one definitions file, by name."""

    views: tuple[FeatureView, ...]

    @model_validator(mode="after")
    def _unique(self) -> Repo:
        names = [v.name for v in self.views]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"view names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def by_name(self) -> dict[str, FeatureView]:
        return {v.name: v for v in self.views}


def parse_repo(data: Any, *, base_dir: Path, origin: str = "definitions") -> Repo:
    """Validate parsed YAML; relative source paths are resolved against ``base_dir``."""
    if not isinstance(data, Mapping) or "views" not in data:
        raise InvalidDefinition(f"{origin}: expected a mapping with a 'views:' list at the top")
    views = data["views"]
    if isinstance(views, list):
        views = [_resolve_source(v, base_dir) for v in views]
    try:
        return Repo.model_validate({**data, "views": views})
    except ValidationError as exc:
        lines = [_describe(err, views) for err in exc.errors()]
        raise InvalidDefinition(f"{origin}: " + "; ".join(lines)) from None


def load_repo(path: Path | str) -> Repo:
    """Read and validate a definitions YAML file."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise InvalidDefinition(f"cannot read definitions {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidDefinition(f"{file}: not valid YAML: {exc}") from None
    return parse_repo(data, base_dir=file.resolve().parent, origin=str(file))


def _resolve_source(view: Any, base_dir: Path) -> Any:
    if not isinstance(view, Mapping) or not isinstance(view.get("source"), Mapping):
        return view
    source = dict(view["source"])
    if isinstance(source.get("path"), str) and source["path"]:
        source["path"] = str((base_dir / Path(source["path"]).expanduser()).resolve())
    return {**view, "source": source}


def _describe(err: Any, views: Any) -> str:
    """``views[1] (customer_activity).features[2].dtype: <pydantic message>``."""
    loc = list(err["loc"])
    where = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            where += f"[{part}]"
            if i == 1 and loc[0] == "views" and isinstance(views, list) and part < len(views):
                name = views[part].get("name") if isinstance(views[part], Mapping) else None
                where += f" ({name})" if isinstance(name, str) else ""
        else:
            where += ("." if where else "") + str(part)
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where or 'views'}: {message}"
