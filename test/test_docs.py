"""Generated docs stay current, and every node's parameters are documented with units/ranges."""
import pathlib

from exo_common import graph
from tools_loader import load_tool

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_parameter_table_is_current():
    render = load_tool('parameter_table').render
    assert (REPO / 'docs' / 'PARAMETERS.md').read_text() == render(), \
        'docs/PARAMETERS.md is stale: run python tools/parameter_table.py'


def test_every_numeric_parameter_has_a_range_and_every_parameter_a_description():
    for node in graph.nodes('sim', record=True) + (graph.LOOP_MONITOR,):
        for spec in node.parameter_specs():
            assert len(spec.description) > 10, f'{node.name}.{spec.name}: no real description'
            numeric = spec.element_kind in (int, float) and not (spec.choices or spec.check)
            if numeric:
                assert spec.min_value is not None and spec.max_value is not None, \
                    f'{node.name}.{spec.name}: numeric parameter without a range'


def test_config_files_match_the_declarations():
    """Each config/<node>.yaml only sets declared parameters, with valid values."""
    from exo_common.config import load_node_params
    for node in graph.nodes('sim', record=True) + (graph.LOOP_MONITOR,):
        load_node_params(node.name, node.parameter_specs())
