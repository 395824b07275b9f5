"""Parameter specs and config files: bad values are refused with the file and key named."""
import math

import pytest

from exo_common.config import load_node_params, read_params_file
from exo_common.params import ConfigError, ParamSpec, resolve

SPECS = [
    ParamSpec('assistance.left_percent', 100.0, 'guidance', '%', 0.0, 100.0),
    ParamSpec('mode', 'guidance', 'control mode', choices=('guidance', 'path')),
    ParamSpec('gains', [1.0, 2.0], 'gains', 'Nm/rad', 0.0, 10.0, length=2),
    ParamSpec('enabled', True, 'flag'),
]


def test_resolve_overlays_and_coerces_ints_to_floats():
    values = resolve(SPECS, {'assistance.left_percent': 40, 'gains': [3, 4]})
    assert values['assistance.left_percent'] == 40.0 and isinstance(values['assistance.left_percent'], float)
    assert values['gains'] == [3.0, 4.0] and values['mode'] == 'guidance'


@pytest.mark.parametrize('key, value, words', [
    ('assistance.left_percent', 120.0, 'above the maximum'),
    ('assistance.left_percent', math.nan, 'not a finite number'),
    ('assistance.left_percent', 'lots', 'expected float'),
    ('mode', 'fly', 'not one of'),
    ('gains', [1.0], 'expected 2 values'),
    ('enabled', 'yes', 'true or false'),
    ('no_such_key', 1.0, 'unknown parameter'),
])
def test_bad_values_are_refused_with_the_key(key, value, words):
    with pytest.raises(ConfigError) as error:
        resolve(SPECS, {key: value}, source='x.yaml')
    assert words in str(error.value) and 'x.yaml' in str(error.value)


def test_params_file_errors_name_the_file(tmp_path):
    bad_yaml = tmp_path / 'bad.yaml'
    bad_yaml.write_text('node: {ros__parameters: [unclosed')
    with pytest.raises(ConfigError, match='bad.yaml: not valid YAML'):
        read_params_file(bad_yaml, 'node')
    wrong_key = tmp_path / 'wrong.yaml'
    wrong_key.write_text('node:\n  ros__parameters:\n    assistance:\n      left_percnt: 3.0\n')
    with pytest.raises(ConfigError, match=r"wrong.yaml: unknown parameter 'assistance.left_percnt'"):
        load_node_params('node', SPECS, wrong_key)
    with pytest.raises(ConfigError, match='cannot read'):
        read_params_file(tmp_path / 'missing.yaml', 'node')


def test_nested_yaml_is_flattened_like_ros(tmp_path):
    good = tmp_path / 'good.yaml'
    good.write_text('node:\n  ros__parameters:\n    assistance:\n      left_percent: 30\n    mode: path\n')
    values = load_node_params('node', SPECS, good, overrides={'mode': 'guidance'})
    assert values['assistance.left_percent'] == 30.0 and values['mode'] == 'guidance'
