"""Typed parameter specifications, checked the same way from a YAML file and at run time.

A node lists its parameters as ParamSpec objects in its plain module; exo_common.ros declares
them on the node with a ParameterDescriptor (description with units, range, read-only), and the
same checks run on every set. Dotted names ('assistance.left_percent') group parameters in
rqt_reconfigure.
"""
from dataclasses import dataclass, field
import math
from typing import Any, Callable, Iterable, Optional


class ConfigError(ValueError):
    """A configuration file or parameter value that cannot be used (message names file/key)."""


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Args:
        name: parameter name; dots group related parameters.
        default: value used when no configuration sets it; its type is the parameter's type
            (float, int, bool, str, or a non-empty list of one of those).
        description: what it does, for people tuning it live.
        units: physical unit ('rad', 'Nm', '%', 'km/h', 's', ...), '' if dimensionless.
        min_value, max_value: inclusive range for numbers (each element of a list).
        step: step for rqt sliders (0 = continuous).
        read_only: cannot change after start-up (needs a restart).
        choices: allowed values for a string parameter.
        length: required length of a list parameter.
        check: extra check returning a reason string when the value is not acceptable.
    """
    name: str
    default: Any
    description: str
    units: str = ''
    min_value: Optional[float] = None
    max_value: Optional[float] = None
    step: float = 0.0
    read_only: bool = False
    choices: tuple = ()
    length: Optional[int] = None
    check: Optional[Callable[[Any], Optional[str]]] = field(default=None, compare=False)

    @property
    def kind(self) -> type:
        value = self.default
        if isinstance(value, (list, tuple)):
            return list
        return type(value)

    @property
    def element_kind(self) -> type:
        if self.kind is list:
            return type(self.default[0])
        return self.kind

    def full_description(self) -> str:
        parts = [self.description]
        if self.units:
            parts.append(f'[{self.units}]')
        if self.min_value is not None or self.max_value is not None:
            parts.append(f'range {self.min_value} .. {self.max_value}')
        if self.choices:
            parts.append('one of: ' + ', '.join(map(str, self.choices)))
        if self.read_only:
            parts.append('(read-only: set at start-up)')
        return ' '.join(parts)

    def coerce(self, value: Any) -> Any:
        """The value in this parameter's type, accepting ints where floats are expected.

        Raises:
            ConfigError: wrong type.
        """
        if self.kind is list:
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f'{self.name}: expected a list, got {value!r}')
            return [_coerce_scalar(self.name, self.element_kind, item) for item in value]
        return _coerce_scalar(self.name, self.kind, value)

    def reason_to_reject(self, value: Any) -> Optional[str]:
        """None when the value is acceptable, else a sentence saying why not."""
        try:
            value = self.coerce(value)
        except ConfigError as exc:
            return str(exc)
        items = value if self.kind is list else [value]
        if self.kind is list and self.length is not None and len(items) != self.length:
            return f'{self.name}: expected {self.length} values, got {len(items)}'
        for item in items:
            if isinstance(item, float) and not math.isfinite(item):
                return f'{self.name}: {item} is not a finite number'
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                if self.min_value is not None and item < self.min_value:
                    return f'{self.name}: {item} {self.units} is below the minimum {self.min_value}'
                if self.max_value is not None and item > self.max_value:
                    return f'{self.name}: {item} {self.units} is above the maximum {self.max_value}'
            if self.choices and item not in self.choices:
                return f'{self.name}: {item!r} is not one of {", ".join(map(str, self.choices))}'
        if self.check is not None:
            return self.check(value)
        return None


def _coerce_scalar(name: str, kind: type, value: Any) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f'{name}: expected true or false, got {value!r}')
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f'{name}: expected {kind.__name__}, got {value!r}')
    return value


def spec_table(specs: Iterable[ParamSpec]) -> dict[str, ParamSpec]:
    table = {}
    for spec in specs:
        if spec.name in table:
            raise ValueError(f'parameter {spec.name} declared twice')
        problem = spec.reason_to_reject(spec.default)
        if problem:
            raise ValueError(f'default of {problem}')
        table[spec.name] = spec
    return table


def resolve(specs: Iterable[ParamSpec], values: dict, source: str = 'parameters') -> dict:
    """Defaults overlaid with values, every value checked.

    Args:
        specs: the node's parameter specifications.
        values: name -> value, e.g. from a YAML file or command-line overrides.
        source: what to name in errors (a file path).

    Raises:
        ConfigError: an unknown name or a bad value, naming the source and the key.
    """
    table = spec_table(specs)
    result = {name: spec.coerce(spec.default) for name, spec in table.items()}
    for name, value in values.items():
        if name in ('use_sim_time',):
            continue
        if name not in table:
            raise ConfigError(f'{source}: unknown parameter {name!r} (known: {", ".join(sorted(table))})')
        problem = table[name].reason_to_reject(value)
        if problem:
            raise ConfigError(f'{source}: {problem}')
        result[name] = table[name].coerce(value)
    return result
