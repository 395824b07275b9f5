"""The launch files, loaded by the real launch engine (skipped where launch_ros is absent).

Each launch file is evaluated as `ros2 launch` would with its default arguments (and some
overrides); the test checks the nodes it would start, their parameter files and values, and
remappings, against the one graph declaration in exo_common.graph.
"""
import pathlib

import pytest
import yaml

launch = pytest.importorskip('launch')
launch_ros = pytest.importorskip('launch_ros')

from launch import LaunchContext  # noqa: E402
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, RegisterEventHandler  # noqa: E402
from launch.launch_description_sources import get_launch_description_from_python_launch_file  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from exo_common import graph  # noqa: E402
from exo_common.config import read_params_file  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch'


@pytest.fixture(autouse=True)
def ament_prefix(tmp_path, monkeypatch):
    """An install prefix where exo_gait and its executables are found, as after colcon build."""
    prefix = tmp_path / 'install'
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'exo_gait').write_text('')
    (prefix / 'share' / 'exo_gait').symlink_to(REPO)
    lib = prefix / 'lib' / 'exo_gait'
    lib.mkdir(parents=True)
    for spec in graph.nodes('sim', record=True):
        script = lib / spec.executable
        script.write_text('#!/bin/sh\n')
        script.chmod(0o755)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))


def evaluate(launch_file: str, arguments: dict | None = None):
    """(nodes, other entities) the launch file would start, with substitutions performed."""
    description = get_launch_description_from_python_launch_file(str(LAUNCH / launch_file))
    context = LaunchContext()
    for name, value in (arguments or {}).items():
        context.launch_configurations[name] = value
    declared, nodes, others = {}, [], []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            declared[entity.name] = entity
            if entity.name not in context.launch_configurations:
                entity.visit(context)
        elif isinstance(entity, Node) and entity.node_package == 'exo_gait':
            nodes.append(entity)
        else:
            others.append(entity)
    started = {}
    for node in nodes:
        if node.condition is not None and not node.condition.evaluate(context):
            continue
        node._perform_substitutions(context)
        started[node.node_name.split('/')[-1]] = node
    return declared, started, others, context


def parameters_of(node) -> dict:
    """Parameters as the node would receive them: files first, then inline values."""
    values = {}
    name = node.node_name.split('/')[-1]
    for entry, is_file in node._Node__expanded_parameter_arguments:
        if is_file:
            values.update(read_params_file(entry, name))
        else:
            values.update({k: yaml.safe_load(v) if isinstance(v, str) else v
                           for k, v in _inline(entry).items()})
    return values


def _inline(entry):
    path = pathlib.Path(entry)
    if path.is_file():  # launch_ros writes inline parameters to a temporary params file
        tree = yaml.safe_load(path.read_text())
        section = next(iter(tree.values()))['ros__parameters']
        return section
    return {}


@pytest.mark.parametrize('launch_file, bringup', [
    ('sim.launch.py', 'sim'), ('bringup.launch.py', 'hardware'), ('gazebo.launch.py', 'gazebo')])
def test_every_argument_is_described_and_nodes_match_the_graph(launch_file, bringup):
    declared, started, _, _ = evaluate(launch_file)
    for name, argument in declared.items():
        assert argument.description and 'no description' not in argument.description.lower(), name
    for required in ('assistance', 'use_sim_time', 'record'):
        assert required in declared
    if bringup == 'sim':
        for required in ('patient', 'speed', 'bws'):
            assert required in declared
    expected = {spec.name for spec in graph.nodes(bringup)}
    assert set(started) == expected, 'record defaults to false: no recorder'
    for spec in graph.nodes(bringup):
        node = started[spec.name]
        assert node.node_executable.endswith(spec.executable)


def test_sim_launch_arguments_reach_node_parameters():
    _, started, _, _ = evaluate('sim.launch.py', {
        'patient': 'complete_sci', 'assistance': '55.0', 'speed': '1.5', 'bws': '40.0',
        'use_sim_time': 'true', 'record': 'true', 'output_dir': '/tmp/session'})
    assert 'session_recorder' in started
    sim = parameters_of(started['mujoco_sim'])
    assert sim['patient.profile'] == 'complete_sci'
    assert sim['treadmill.speed_kmh'] == 1.5 and sim['bws.percent'] == 40.0
    controller = parameters_of(started['gait_controller'])
    assert controller['assistance.left_percent'] == 55.0 == controller['assistance.right_percent']
    assert controller['reference.speed_kmh'] == 1.5
    for name, node in started.items():
        assert parameters_of(node)['use_sim_time'] is True, name
    safety = parameters_of(started['safety_supervisor'])
    assert safety['fault_log.path'] == '/tmp/session/safety_faults.jsonl'


def test_config_files_are_loaded_for_each_node():
    _, started, _, _ = evaluate('sim.launch.py')
    for spec in graph.nodes('sim'):
        files = [entry for entry, is_file in started[spec.name]._Node__expanded_parameter_arguments if is_file]
        # the config file first, then launch_ros' temporary file of the inline overrides
        assert pathlib.Path(files[0]) == REPO / 'config' / f'{spec.name}.yaml'
        assert all(pathlib.Path(f).name.startswith('launch_params') for f in files[1:])


def test_gazebo_chains_spawners_after_the_robot_is_created():
    _, started, others, _ = evaluate('gazebo.launch.py')
    assert 'emg_node' not in started and 'mujoco_sim' not in started
    handlers = [e for e in others if isinstance(e, RegisterEventHandler)]
    assert len(handlers) == 2
    includes = [e for e in others if isinstance(e, IncludeLaunchDescription)]
    assert len(includes) == 1
    for name in ('gait_controller', 'safety_supervisor', 'encoder_node'):
        assert parameters_of(started[name])['use_sim_time'] is True
