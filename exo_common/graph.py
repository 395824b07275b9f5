"""The node graph, declared once for `ros2 launch` (launch/*.launch.py) and `exo-gait sim`.

Each node has a config file config/<name>.yaml. The embedded runner groups nodes into a few
processes (`group`) to keep a 1 kHz loop within two cores; ros2 launch starts one process per
node. Launch arguments map onto node parameters through ARGUMENTS, so both bring-ups accept the
same settings.
"""
from dataclasses import dataclass
import importlib

from exo_common.paths import config_path


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    Args:
        name: node name; also the stem of its config file.
        executable: console script (`ros2 run exo_gait <executable>`).
        module, class_name: where the node class lives (the embedded runner imports it).
        group: process the embedded runner puts it in.
        parameters: 'module:ATTRIBUTE' of the node's ParamSpec list (checked before start-up).
        remappings: (from, to) topic remappings.
    """
    name: str
    executable: str
    module: str
    class_name: str
    group: str
    parameters: str
    remappings: tuple = ()

    def parameter_specs(self) -> list:
        """The node's ParamSpec list, imported without creating the node."""
        module, attribute = self.parameters.split(':')
        return list(getattr(importlib.import_module(module), attribute))

    @property
    def config_file(self):
        return config_path(self.name)


# The simulator runs in the control loop's process, as gz_ros2_control runs the controllers
# inside Gazebo: samples and commands are handed over in-process (exo_common.ros.LocalPublisher)
# and still published on DDS for everyone else. `exo-gait sim --separate-simulator` gives it a
# process of its own (one DDS hop each way, as a hardware driver in its own process would be).
SIMULATOR = NodeSpec('mujoco_sim', 'mujoco_sim', 'exo_sim.mujoco_sim_node', 'MujocoSimNode', 'control',
                     'exo_sim.mujoco_sim_node:PARAMETERS')
SENSORS = (
    NodeSpec('encoder_node', 'encoder_node', 'exo_sensors.encoder_node', 'EncoderNode', 'control',
             'exo_sensors.encoder:PARAMS'),
    NodeSpec('imu_node', 'imu_node', 'exo_sensors.imu_node', 'ImuNode', 'sensors',
             'exo_sensors.imu_node:NODE_PARAMS'),
    NodeSpec('emg_node', 'emg_node', 'exo_sensors.emg_node', 'EmgNode', 'sensors',
             'exo_sensors.emg:PARAMS'),
)
CONTROL = (
    NodeSpec('gait_controller', 'gait_controller', 'exo_control.gait_controller_node',
             'GaitControllerNode', 'control', 'exo_control.controller:PARAMS'),
    NodeSpec('safety_supervisor', 'safety_supervisor', 'exo_safety.safety_supervisor_node',
             'SafetySupervisorNode', 'control', 'exo_safety.supervisor:PARAMETERS'),
)
ANALYSIS = (
    NodeSpec('gait_analyzer', 'gait_analyzer', 'exo_analysis.gait_analyzer_node',
             'GaitAnalyzerNode', 'analysis', 'exo_analysis.settings:PARAMS'),
)
RECORDER = NodeSpec('session_recorder', 'session_recorder', 'exo_analysis.recorder',
                    'SessionRecorderNode', 'analysis', 'exo_analysis.recorder:PARAMS')
# Scheduling of the embedded runner's processes: the 1 kHz loop first (with the simulator, or
# the simulator next with --separate-simulator: real hardware does not wait for our software),
# then the IMU and EMG processing (the pelvis IMU feeds the safety supervisor's watchdog: niced
# below the simulator, it fell 200 ms behind when another program loaded the machine); analysis
# and recording take what is left. Niceness (negative values only where permitted) in
# lock-step; SCHED_FIFO priorities with --realtime where permitted (--[no-]realtime-priority).
GROUP_NICENESS = {'control': -10, 'sim': -5, 'sensors': -5, 'analysis': 15}
GROUP_PRIORITY = {'control': 40, 'sim': 30, 'sensors': 20, 'analysis': 0}

LOOP_MONITOR = NodeSpec('loop_monitor', 'loop_monitor', 'exo_common.loop_monitor', 'LoopMonitorNode',
                        'control', 'exo_common.loop_monitor:PARAMETERS')


def nodes(bringup: str, record: bool = False) -> tuple:
    """The nodes of a bring-up.

    Args:
        bringup: 'sim' (everything on mujoco_sim), 'gazebo' (our nodes; Gazebo + ros2_control
            is the hardware) or 'hardware' (our nodes; real drivers publish /hw/*).
        record: add the session recorder.
    """
    if bringup not in ('sim', 'gazebo', 'hardware'):
        raise ValueError(f'unknown bring-up {bringup!r}')
    graph = (SIMULATOR,) if bringup == 'sim' else ()
    sensors = SENSORS if bringup != 'gazebo' else tuple(s for s in SENSORS if s.name != 'emg_node')
    graph += sensors + CONTROL + ANALYSIS
    if record:
        graph += (RECORDER,)
    return graph


@dataclass(frozen=True)
class Argument:
    """A bring-up setting: a launch argument and an `exo-gait sim` option.

    targets: (node name, parameter name) pairs the value is written to; `scale` converts the
    argument's unit to the parameter's.
    """
    name: str
    default: str
    description: str
    targets: tuple = ()
    kind: type = float


ARGUMENTS = (
    Argument('patient', 'stroke_left_hemiparesis',
             'Patient profile of the simulated wearer (config/patients/<name>.yaml).',
             (('mujoco_sim', 'patient.profile'),), str),
    Argument('assistance', '100.0',
             'Upper bound of robot assistance for both legs, percent (0 = transparent, '
             '100 = full guidance).',
             (('gait_controller', 'assistance.left_percent'),
              ('gait_controller', 'assistance.right_percent'))),
    Argument('speed', '2.0', 'Treadmill belt speed, km/h (0.5 to 3.2).',
             (('mujoco_sim', 'treadmill.speed_kmh'), ('gait_controller', 'reference.speed_kmh'))),
    Argument('bws', '40.0', 'Body-weight support, percent of body weight (0 to 100).',
             (('mujoco_sim', 'bws.percent'),)),
    Argument('mode', 'cooperative',
             'Gait controller mode: transparent, guidance (time-based phase), cooperative (the '
             'patient leads timing) or path (virtual tunnel).',
             (('gait_controller', 'mode'),), str),
    Argument('aan', 'true', 'Assist-as-needed adaptation on (true) or fixed assistance (false).',
             (('gait_controller', 'aan.enabled'),), bool),
    Argument('seed', '0', 'Random seed of the simulation (sensor noise, patient variability).',
             (('mujoco_sim', 'seed'),), int),
)
def parameter_overrides(values: dict) -> dict:
    """{node name: {parameter: value}} for argument values given as text or numbers."""
    by_name = {argument.name: argument for argument in ARGUMENTS}
    overrides: dict = {}
    for name, value in values.items():
        argument = by_name[name]
        for node, parameter in argument.targets:
            overrides.setdefault(node, {})[parameter] = typed(argument, value)
    return overrides


def typed(argument: Argument, value):
    """An argument's value in its type; text as on a command line is accepted.

    Raises:
        ValueError: the text is not a value of that type.
    """
    if argument.kind is bool and isinstance(value, str):
        text = value.strip().lower()
        if text not in ('true', 'false', '1', '0', 'yes', 'no', 'on', 'off'):
            raise ValueError(f'{argument.name}: expected true or false, got {value!r}')
        return text in ('true', '1', 'yes', 'on')
    try:
        return argument.kind(value)
    except (TypeError, ValueError):
        raise ValueError(f'{argument.name}: expected {argument.kind.__name__}, got {value!r}') from None
