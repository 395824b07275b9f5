"""The supervisor against other processes: a killed controller, a killed supervisor."""
import time

from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from exo_common.ros import LATCHED_QOS
from exo_common.testing import NodeProcess, wait_until
from exo_safety.events import read_events
from exo_safety.safety_supervisor_node import COMMAND_TOPIC, STATE_TOPIC, SafetySupervisorNode
from exo_safety.stand_in import StandInNode


def _enable(ros, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = ros.call(SetBool, '/safety_supervisor/enable', SetBool.Request(data=True), timeout=timeout)
        if response.success:
            return
        time.sleep(0.2)
    raise TimeoutError(f'enable refused: {response.message}')


def test_killed_controller_gives_the_safe_state(ros, tmp_path):
    overrides = {'fault_log.path': str(tmp_path / 'faults.jsonl'), 'safe_mode': 'zero',
                 'engage.ramp_time': 0.0, 'watchdog.request_max_age': 0.02,
                 # sensors come from this busy test process: only the controller is under test
                 'watchdog.joint_states_max_age': 0.5, 'watchdog.imu_max_age': 0.5}
    supervisor = ros.add_node(SafetySupervisorNode(
        context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]))
    ros.add_node(StandInNode(context=ros.context, parameter_overrides=[Parameter('role', value='sensors')]))
    commands = ros.collect(Float64MultiArray, COMMAND_TOPIC)
    states = ros.collect(String, STATE_TOPIC, LATCHED_QOS)
    controller = NodeProcess('exo_safety.stand_in', ('-p', 'role:=controller', '-p', 'torque:=5.0'))
    try:
        _enable(ros)
        wait_until(lambda: commands and commands[-1].data.tolist() == [5.0] * 6, 5.0, 'torque on')
        before = len(commands)
        killed_at = time.monotonic()
        controller.kill()
        wait_until(lambda: states[-1].data == 'DISABLED', 2.0, 'safe stop')
        wait_until(lambda: not any(commands[-1].data), 2.0, 'zero torque')
        reaction = time.monotonic() - killed_at
        after_kill = len(commands)
        time.sleep(0.1)
        supervisor.event_log.flush()
    finally:
        controller.stop()
    assert reaction < 1.0  # the figure itself: bench/bench_safety.py (kill latency)
    assert len(commands) > after_kill >= before  # the safe command keeps coming
    assert all(not any(msg.data) for msg in commands[after_kill:])
    assert supervisor.supervisor.state == 'DISABLED'
    assert [e['code'] for e in read_events(tmp_path / 'faults.jsonl') if e['kind'] == 'safe_stop'] == \
        ['CONTROLLER_STALE']


def test_fault_log_line_survives_a_killed_supervisor(ros, tmp_path):
    log_path = tmp_path / 'faults.jsonl'
    supervisor = NodeProcess('exo_safety.safety_supervisor_node', ('-p', f'fault_log.path:={log_path}'))
    try:
        response = ros.call(Trigger, '/safety_supervisor/estop', Trigger.Request(), timeout=20.0)
        assert response.success
        supervisor.process.kill()  # SIGKILL right after the answer: no clean shutdown
        supervisor.process.wait(timeout=5.0)
    finally:
        supervisor.stop()
    events = read_events(log_path)
    assert [(e['kind'], e['code']) for e in events] == [('fault', 'ESTOP'), ('operator', 'estop')]
    assert [e['sequence'] for e in events] == [1, 2]
