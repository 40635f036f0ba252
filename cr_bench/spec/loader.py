"""Reading inputs: YAML files and nested mappings into typed dataclasses, one way for all.

Every input of cr-bench (a run config, a suite, a search space) is a dataclass whose
fields carry their types and docstrings. :func:`from_dict` builds one from a mapping and
names the bad key path on error; :func:`merge` layers partial mappings following the
dataclass's own structure.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_write_text

T = TypeVar("T")


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` converted to ``annotation``, or raise CrBenchError naming ``where``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _check_type(value, option, where)
            except CrBenchError:
                continue
        raise CrBenchError(f"{where}: {value!r} is not a valid {_type_name(annotation)}")
    if origin is typing.Literal:
        if value in typing.get_args(annotation):
            return value
        known = ", ".join(map(str, typing.get_args(annotation)))
        raise CrBenchError(f"{where}: unknown {value!r}; known: {known}")
    if annotation is type(None):
        if value is None:
            return None
    elif dataclasses.is_dataclass(annotation):
        if isinstance(value, dict):
            return from_dict(annotation, value, where)  # type: ignore[arg-type]
    elif origin is list:
        if isinstance(value, list | tuple):
            (item,) = typing.get_args(annotation)
            return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            _, item = typing.get_args(annotation)
            return {str(k): _check_type(v, item, f"{where}.{k}") for k, v in value.items()}
    elif annotation is Any:
        return value
    elif annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # YAML reads 1e6 as a float
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is str and isinstance(value, str):
        return value
    raise CrBenchError(f"{where}: {value!r} is not a valid {_type_name(annotation)}")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise CrBenchError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise CrBenchError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(names))}")
    return cls(**{k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()})


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain nested dicts, ready for YAML."""
    return dataclasses.asdict(config)


def merge(base: dict[str, Any], override: dict[str, Any], schema: type | None = None) -> dict[str, Any]:
    """``override`` layered onto a copy of ``base``, following the dataclass ``schema``.

    A nested dataclass field (``env``, ``env.shaping``...) and an open mapping of keyword
    arguments (``dict[str, Any]``, such as ``algo``) merge key by key; any other value,
    a typed mapping such as ``policy.net_arch`` included, is replaced whole. Without a
    schema every mapping merges.

    >>> from cr_bench.spec.run import RunConfig
    >>> base = {"algo": {"gamma": 0.99}, "policy": {"net_arch": {"pi": [64], "vf": [64]}}}
    >>> merge(base, {"algo": {"n_epochs": 4}, "policy": {"net_arch": {"pi": [32]}}}, RunConfig)
    {'algo': {'gamma': 0.99, 'n_epochs': 4}, 'policy': {'net_arch': {'pi': [32]}}}
    """
    hints = typing.get_type_hints(schema) if schema is not None else {}
    merged = dict(base)
    for key, value in override.items():
        kind = hints.get(key)
        if (schema is None or _merges(kind)) and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(
                merged[key], value, kind if isinstance(kind, type) and dataclasses.is_dataclass(kind) else None
            )
        else:
            merged[key] = value
    return merged


def _merges(annotation: Any) -> bool:
    """Whether a field merges key by key: a nested dataclass or an open ``dict[str, Any]``."""
    if dataclasses.is_dataclass(annotation):
        return True
    return typing.get_origin(annotation) is dict and typing.get_args(annotation)[1] is Any


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e6`` and ``3e-4`` as floats (YAML 1.2; PyYAML needs a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely, with YAML 1.2 floats."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning missing files and syntax errors into one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise CrBenchError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CrBenchError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); expected YAML") from None
    except OSError as error:
        raise CrBenchError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise CrBenchError(f"malformed YAML in {path}{line}: {getattr(error, 'problem', error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CrBenchError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def write_yaml(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as YAML atomically (a crash never leaves a half-written file)."""
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
