"""imu_node: /hw/imu/<frame> (raw accel + gyro) -> /imu/<frame> (orientation, bias-free rate).

All math and checks are in exo_sensors.imu; this is the rclpy shell. One filter per IMU frame;
the frames must exist in the URDF (exo_common.description), and each output's frame_id is the
frame's URDF link name.

QoS: STREAM (RELIABLE, KEEP_LAST 10, VOLATILE; docs/INTERFACES.md) in and out. 100 Hz per IMU by default;
depth 10 (50 ms) absorbs a stalled callback without losing samples (the orientation filter
integrates every gyro sample, so a lost one is an orientation error), and the staleness check
refuses whatever got too old in the queue. Diagnostics: DIAGNOSTICS (reliable, depth 100).
"""
from functools import partial

from sensor_msgs.msg import Imu

from exo_common.description import load_description
from exo_common.joints import IMU_FRAMES
from exo_common.params import ConfigError, ParamSpec
from exo_common.ros import STREAM_QOS, node_main
from exo_sensors.imu import PARAMS, ImuFilter, check_params
from exo_sensors.sensor_node import SensorNode

NODE_PARAMS = [
    ParamSpec('frames', list(IMU_FRAMES), 'IMU frames (URDF links) to process: /hw/imu/<frame> -> '
              '/imu/<frame>', read_only=True, check=lambda frames: None if set(frames) <= set(IMU_FRAMES)
              else f'frames: unknown IMU frame(s) {sorted(set(frames) - set(IMU_FRAMES))}'),
    *PARAMS,
]


class ImuNode(SensorNode):
    """Orientation estimation for each IMU frame; refuses implausible samples.

    Raises:
        ConfigError: a configured frame is not an IMU frame of the URDF.
    """

    def __init__(self, **kwargs):
        super().__init__('imu_node', NODE_PARAMS, **kwargs)
        urdf_frames = load_description().imu_frames
        self.filters = {}
        self._outputs = {}
        for frame in self.params['frames']:
            if frame not in urdf_frames:
                raise ConfigError(f'imu_node: frame {frame} is not an IMU link of the URDF')
            self.filters[frame] = ImuFilter(self.params)
            out = Imu()
            out.header.frame_id = frame
            self._outputs[frame] = (out, self.create_publisher(Imu, f'/imu/{frame}', STREAM_QOS))
            self.create_subscription(Imu, f'/hw/imu/{frame}', partial(self.on_raw, frame), STREAM_QOS)

    def check_parameters(self, candidate: dict):
        return check_params(candidate)

    def on_parameters_changed(self, changed: dict) -> None:
        for imu_filter in self.filters.values():
            imu_filter.configure(self.params)

    def on_raw(self, frame: str, msg: Imu) -> None:
        if msg.header.frame_id != frame:
            self.report(f'{frame}: frame_id', f'{frame}: message on /hw/imu/{frame} has frame_id '
                        f'{msg.header.frame_id!r}; refused', {'frame': frame, 'value': msg.header.frame_id})
            return
        stamp = msg.header.stamp
        a, w = msg.linear_acceleration, msg.angular_velocity
        imu_filter = self.filters[frame]
        problem = imu_filter.update(stamp.sec + stamp.nanosec * 1e-9, self.now(), (a.x, a.y, a.z), (w.x, w.y, w.z))
        if problem is not None:
            kind, message, values = problem
            self.report(f'{frame}: {kind}', f'{frame}: {message}', {'frame': frame, **values})
            return
        out, publisher = self._outputs[frame]
        out.header.stamp = stamp
        qw, qx, qy, qz = imu_filter.orientation
        out.orientation.w, out.orientation.x, out.orientation.y, out.orientation.z = \
            float(qw), float(qx), float(qy), float(qz)
        rate = imu_filter.angular_velocity
        out.angular_velocity.x, out.angular_velocity.y, out.angular_velocity.z = \
            float(rate[0]), float(rate[1]), float(rate[2])
        out.linear_acceleration = a
        out.orientation_covariance = imu_filter.orientation_covariance
        out.angular_velocity_covariance = imu_filter.angular_velocity_covariance
        out.linear_acceleration_covariance = imu_filter.linear_acceleration_covariance
        publisher.publish(out)
        self.published += 1


def main():
    node_main(ImuNode)


if __name__ == '__main__':
    main()
