"""Building blocks for launch/*.launch.py from the one node-graph declaration (exo_common.graph).

Imported only by launch files, so `launch` and `launch_ros` are needed only there.
"""
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from exo_common import graph

COMMON_ARGUMENTS = (
    ('use_sim_time', 'false', 'Run every node on /clock (true with Gazebo or a lock-step simulator).'),
    ('record', 'false', 'Record the session as MCAP (ROS 2 encoding) in output_dir.'),
    ('output_dir', 'exo_gait_sessions/launch',
     'Folder for the session recording and the safety fault log.'),
    ('patient_id', 'anonymous', 'Patient identifier written into the recording metadata.'),
)


def declare_arguments(bringup: str, use_sim_time_default: str = 'false') -> list:
    """DeclareLaunchArgument for every bring-up setting, each with a description."""
    declared = []
    for argument in graph.ARGUMENTS:
        if bringup != 'sim' and all(node == 'mujoco_sim' for node, _ in argument.targets):
            continue
        declared.append(DeclareLaunchArgument(
            argument.name, default_value=argument.default, description=argument.description))
    for name, default, description in COMMON_ARGUMENTS:
        if name == 'use_sim_time':
            default = use_sim_time_default
        declared.append(DeclareLaunchArgument(name, default_value=default, description=description))
    return declared


def _override_parameters(spec: graph.NodeSpec, bringup: str) -> dict:
    overrides = {}
    for argument in graph.ARGUMENTS:
        for node, parameter in argument.targets:
            if node == spec.name and (bringup == 'sim' or node != 'mujoco_sim'):
                overrides[parameter] = ParameterValue(
                    LaunchConfiguration(argument.name), value_type=argument.kind)
    overrides['use_sim_time'] = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    if spec.name == 'safety_supervisor':
        overrides['fault_log.path'] = [LaunchConfiguration('output_dir'), '/safety_faults.jsonl']
    if spec.name == 'session_recorder':
        overrides['output_dir'] = LaunchConfiguration('output_dir')
        overrides['patient.id'] = LaunchConfiguration('patient_id')
        if bringup == 'sim':
            overrides['session.profile'] = LaunchConfiguration('patient')
    return overrides


def node_actions(bringup: str) -> list:
    """One launch_ros Node per graph node, parameters from config/<node>.yaml + arguments."""
    actions = []
    for spec in graph.nodes(bringup, record=True):
        actions.append(Node(
            package='exo_gait', executable=spec.executable, name=spec.name, output='screen',
            parameters=[str(spec.config_file), _override_parameters(spec, bringup)],
            remappings=list(spec.remappings),
            condition=IfCondition(LaunchConfiguration('record')) if spec is graph.RECORDER else None,
        ))
    return actions
