"""Stand-ins for the supervisor's neighbours, for tests and benchmarks (not for sessions).

Message builders, and `StandInNode`: a process that plays the encoder/IMU nodes ('sensors'),
the gait controller ('controller') or both, at the contract rates, with a still patient at a
fixed posture and a constant torque request whose reference is that posture. Run it as
`python -m exo_safety.stand_in --ros-args -p role:=controller -p torque:=5.0`.
"""
import sys

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState

from exo_common.joints import JOINT_NAMES
from exo_common.ros import STREAM_QOS, make_executor, sec_to_stamp, spin

REQUEST_TOPIC = '/gait_controller/effort_request'
UPRIGHT = (0.0, 0.0, 0.0, 1.0)  # x, y, z, w


def joint_state_msg(stamp: float, position, velocity=None, effort=None) -> JointState:
    return JointState(header=_header(stamp), name=list(JOINT_NAMES), position=list(position),
                      velocity=list(velocity if velocity is not None else [0.0] * len(JOINT_NAMES)),
                      effort=list(effort if effort is not None else []))


def request_msg(stamp: float, effort, reference, reference_velocity=None) -> JointState:
    return JointState(header=_header(stamp), name=list(JOINT_NAMES), effort=list(effort),
                      position=list(reference),
                      velocity=list(reference_velocity if reference_velocity is not None
                                    else [0.0] * len(JOINT_NAMES)))


def imu_msg(stamp: float, orientation=UPRIGHT, angular_velocity=(0.0, 0.0, 0.0),
            linear_acceleration=(0.0, 0.0, 9.81)) -> Imu:
    msg = Imu(header=_header(stamp))
    msg.header.frame_id = 'pelvis_imu'
    (msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w) = orientation
    (msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z) = angular_velocity
    (msg.linear_acceleration.x, msg.linear_acceleration.y,
     msg.linear_acceleration.z) = linear_acceleration
    return msg


def _header(stamp: float):
    from std_msgs.msg import Header
    return Header(stamp=sec_to_stamp(stamp))


class StandInNode(Node):
    """Publishes sensors (1 kHz joint states, 200 Hz pelvis IMU) and/or requests (1 kHz).

    Parameters: role ('sensors', 'controller', 'both'), torque (N m, every joint),
    posture (rad, every joint).
    """

    def __init__(self, **kwargs):
        super().__init__('stand_in', **kwargs)
        role = self.declare_parameter('role', 'both').value
        self.torque = float(self.declare_parameter('torque', 5.0).value)
        self.posture = [float(self.declare_parameter('posture', 0.2).value)] * len(JOINT_NAMES)
        self._clock = self.get_clock()
        self._count = 0
        self._sensors = role in ('sensors', 'both')
        self._controller = role in ('controller', 'both')
        self._joint_pub = self.create_publisher(JointState, '/joint_states', STREAM_QOS)
        self._imu_pub = self.create_publisher(Imu, '/imu/pelvis_imu', STREAM_QOS)
        self._request_pub = self.create_publisher(JointState, REQUEST_TOPIC, STREAM_QOS)
        self.create_timer(0.001, self._on_timer)

    def _on_timer(self):
        now = self._clock.now().nanoseconds * 1e-9
        if self._sensors:
            self._joint_pub.publish(joint_state_msg(now, self.posture))
            if self._count % 5 == 0:
                self._imu_pub.publish(imu_msg(now))
        if self._controller:
            self._request_pub.publish(request_msg(now, [self.torque] * len(JOINT_NAMES), self.posture))
        self._count += 1


def main(args=None):
    rclpy.init(args=args if args is not None else sys.argv)
    node = StandInNode()
    executor = make_executor()
    executor.add_node(node)
    try:
        spin(executor)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == '__main__':
    main()
