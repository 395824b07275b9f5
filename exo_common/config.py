"""Reading node parameter files (the ros2 `--params-file` format) with clear errors."""
import pathlib
from typing import Iterable

import yaml

from exo_common.params import ConfigError, ParamSpec, resolve
from exo_common.paths import config_path


def flatten(tree: dict, prefix: str = '') -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}, as ROS 2 reads nested parameter YAML."""
    flat = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def read_params_file(path: pathlib.Path | str, node_name: str) -> dict:
    """The flat parameter dict for node_name from a ros2 parameter file.

    Accepts sections keyed by the node name, '/node_name' or the '/**' wildcard.

    Raises:
        ConfigError: missing file, invalid YAML, wrong layout; the message names the file.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f'{path}: cannot read parameter file: {exc.strerror}') from exc
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML: {exc}') from exc
    if not isinstance(tree, dict):
        raise ConfigError(f'{path}: expected a mapping of node names to ros__parameters')
    values = {}
    for key in ('/**', node_name, '/' + node_name):
        section = tree.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not isinstance(section.get('ros__parameters'), dict):
            raise ConfigError(f'{path}: section {key!r} must contain a ros__parameters mapping')
        values.update(flatten(section['ros__parameters']))
    unknown_sections = set(tree) - {'/**', node_name, '/' + node_name}
    if unknown_sections:
        raise ConfigError(f'{path}: unknown section(s) {sorted(unknown_sections)}; expected {node_name!r}')
    return values


def load_node_params(node_name: str, specs: Iterable[ParamSpec], path=None, overrides=None) -> dict:
    """Checked parameters of a node: defaults < its config file < overrides.

    Raises:
        ConfigError: naming the file (or 'overrides') and the offending key.
    """
    path = pathlib.Path(path) if path is not None else config_path(node_name)
    specs = list(specs)
    values = resolve(specs, read_params_file(path, node_name), source=str(path))
    if overrides:
        values.update(resolve(specs, {**values, **overrides}, source='overrides'))
    return values
