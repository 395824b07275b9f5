"""encoder_node: /hw/joint_states (raw encoders) -> /joint_states (calibrated, filtered, checked).

All math and checks are in exo_sensors.encoder; this is the rclpy shell.

QoS: both topics use STREAM (RELIABLE, KEEP_LAST 10, VOLATILE; docs/INTERFACES.md). This node
is in the 1 kHz control chain: depth 1 loses samples whenever a Python callback falls behind,
and a lost sample is a hole in the controller's input, while 10 samples (10 ms) bound how old
queued data can get; old data is refused anyway by the staleness check. Late joiners need no
history (VOLATILE). Diagnostics use DIAGNOSTICS (reliable, depth 100) so a burst of problem
reports survives.

Joint limits come from the URDF (exo_common.description.joint_limits()).
"""
from sensor_msgs.msg import JointState

from exo_common.description import joint_limits
from exo_common.joints import JOINT_NAME_LIST
from exo_common.ros import STREAM_QOS, node_main
from exo_sensors.encoder import PARAMS, EncoderProcessor
from exo_sensors.sensor_node import SensorNode


class EncoderNode(SensorNode):
    """Calibrates raw encoder samples, filters velocity and refuses implausible samples.

    Subscribes /hw/joint_states, publishes /joint_states (only valid samples, device stamp kept)
    and /diagnostics.
    """

    def __init__(self, **kwargs):
        super().__init__('encoder_node', PARAMS, **kwargs)
        self.processor = EncoderProcessor(joint_limits(), self.params)
        self._pub = self.create_local_publisher(JointState, '/joint_states', STREAM_QOS)
        self.create_local_subscription(JointState, '/hw/joint_states', self.on_raw, STREAM_QOS)

    def on_parameters_changed(self, changed: dict) -> None:
        self.processor.configure(self.params)

    def on_raw(self, msg: JointState) -> None:
        stamp = msg.header.stamp
        processor = self.processor
        problems = processor.update(stamp.sec + stamp.nanosec * 1e-9, self.now(), msg.name, msg.position,
                                    msg.effort)
        if problems:
            for key, message, values in problems:
                self.report(key, message, values)
            return
        out = JointState(name=JOINT_NAME_LIST, position=processor.position, velocity=processor.velocity,
                         effort=processor.effort)
        out.header.stamp = stamp
        self._pub.publish(out)  # a new message each time: its DDS copy may go out later
        self.published += 1


def main():
    node_main(EncoderNode)


if __name__ == '__main__':
    main()
