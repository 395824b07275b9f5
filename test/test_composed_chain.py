"""The control chain composed in one process, as the embedded runner composes it with the
simulator: the encoder node, the controller and the supervisor hand each sample on by direct
call, and the DDS copies of their messages go out later (exo_common.ros.dds_copies_deferred),
so every message they publish must be a new one."""
import time

import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from exo_common.joints import JOINT_NAMES
from exo_common.ros import STREAM_QOS, ExoNode, dds_copies_deferred, sec_to_stamp
from exo_common.testing import wait_until
from exo_control.gait_controller_node import GaitControllerNode
from exo_safety.safety_supervisor_node import COMMAND_TOPIC, REQUEST_TOPIC, STAMPED_TOPIC, SafetySupervisorNode
from exo_sensors.encoder_node import EncoderNode

POSTURE = [0.3, 0.2, 0.0, 0.1, 0.3, 0.05]
CHAIN_TOPICS = {'/joint_states': JointState, REQUEST_TOPIC: JointState, STAMPED_TOPIC: JointState,
                COMMAND_TOPIC: Float64MultiArray}


@pytest.fixture
def chain(ros, tmp_path):
    """The three nodes, driven by direct calls only: outside the executor no timer of theirs
    (the supervisor's watchdog repeating the safe command) publishes beside the samples."""
    nodes = [EncoderNode(context=ros.context), GaitControllerNode(context=ros.context),
             SafetySupervisorNode(context=ros.context, parameter_overrides=[
                 Parameter('fault_log.path', value=str(tmp_path / 'faults.jsonl'))])]
    yield nodes
    for node in nodes:
        node.destroy_node()


def test_each_sample_gets_new_messages_whose_deferred_dds_copies_say_what_they_said(ros, chain):
    device = ros.add_node(ExoNode('device', [], context=ros.context))
    samples = device.create_local_publisher(JointState, '/hw/joint_states', STREAM_QOS)
    local = {topic: [] for topic in CHAIN_TOPICS}
    for topic, msg_type in CHAIN_TOPICS.items():
        device.create_local_subscription(msg_type, topic, local[topic].append, STREAM_QOS)
    copies = {topic: ros.collect(msg_type, topic) for topic, msg_type in CHAIN_TOPICS.items()}
    wait_until(lambda: all(ros.node.count_publishers(topic) for topic in CHAIN_TOPICS), 5.0, 'the publishers')
    time.sleep(0.5)  # DDS matching of the collectors

    pending = []
    for k in range(3):
        position = [q + 0.001 * k for q in POSTURE]
        msg = JointState(name=JOINT_NAMES, position=position, effort=[0.0] * 6)
        msg.header.stamp = sec_to_stamp(time.time())
        with dds_copies_deferred(pending.append):
            samples.publish(msg)
        time.sleep(0.002)
    for topic in CHAIN_TOPICS:
        assert len(local[topic]) == 3, topic
        assert len({id(m) for m in local[topic]}) == 3, f'{topic}: a message object published twice'
    assert not any(copies[topic] for topic in CHAIN_TOPICS)  # nothing on DDS until the loop has time
    encoder, controller, supervisor = chain
    assert encoder.published == 3
    assert not list(controller.controller.problems.items())
    assert not [key for key, _ in supervisor.supervisor.problems.items()], 'the supervisor refused a message'

    for send in pending:
        send()
    for topic in CHAIN_TOPICS:
        wait_until(lambda: len(copies[topic]) == 3, 5.0, f'the DDS copies of {topic}')
    assert [list(m.position) for m in copies['/joint_states']] == [list(m.position) for m in local['/joint_states']]
    for topic in (REQUEST_TOPIC, STAMPED_TOPIC):
        assert [(m.header.stamp.nanosec, list(m.effort)) for m in copies[topic]] == \
            [(m.header.stamp.nanosec, list(m.effort)) for m in local[topic]], topic
    assert [list(m.data) for m in copies[COMMAND_TOPIC]] == [list(m.data) for m in local[COMMAND_TOPIC]]
    assert len({m.header.stamp.nanosec for m in copies[STAMPED_TOPIC]}) == 3
