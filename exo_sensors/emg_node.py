"""emg_node: /hw/emg (raw batches) -> /emg/envelope (activation normalised to MVC, envelope).

All math and checks are in exo_sensors.emg; this is the rclpy shell.

Topics (docs/INTERFACES.md): /hw/emg is trajectory_msgs/JointTrajectory, joint_names = channels,
points[k].positions = sample k (mV), time_from_start = k / fs, header.stamp = sample 0.
/emg/envelope is sensor_msgs/JointState: name = channels (EMG_CHANNELS order), position =
activation (0..1 of MVC), effort = envelope (mV), stamp = the batch's last sample.

QoS: STREAM (RELIABLE, KEEP_LAST 10, VOLATILE) in and out: every batch is 10 ms of signal that
the streaming filters need in order (a lost batch is reported as a gap), 10 batches = 100 ms of
queue; no history for late joiners. Diagnostics: DIAGNOSTICS.

Service `~/calibrate_mvc` (std_srvs/Trigger): starts recording the peak envelope of every
channel for `mvc.calibration_duration` s (ask the patient for maximal contractions of each
muscle during that window) and returns at once; when the window ends the peaks are written to
the `mvc.<channel>` parameters (visible to `ros2 param` and rqt) and reported on /diagnostics.
"""
import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from exo_common.diagnostics import Level, Report
from exo_common.joints import EMG_CHANNELS
from exo_common.ros import STREAM_QOS, node_main
from exo_sensors.emg import (PARAMS, EmgProcessor, MvcCalibration, batch_problem,
                             continuity_problem, non_finite_problem, reorder_columns)
from exo_sensors.sensor_node import SensorNode
from exo_sensors.stamps import StampCheck

MIN_MVC_MV = next(spec.min_value for spec in PARAMS if spec.name.startswith('mvc.left'))


class EmgNode(SensorNode):
    """Filters raw EMG to envelopes, normalises them to MVC and watches the electrodes."""

    def __init__(self, **kwargs):
        super().__init__('emg_node', PARAMS, **kwargs)
        self.channels = EMG_CHANNELS
        self.fs = self.params['sample_rate']
        self.processor = EmgProcessor(self.params, self.channels)
        self.stamps = StampCheck(self.params['plausibility.max_age'], self.params['plausibility.max_future'])
        self.calibration = None
        self._previous_end = None
        self._out = JointState()
        self._out.name = list(self.channels)
        self._pub = self.create_publisher(JointState, '/emg/envelope', STREAM_QOS)
        self.create_subscription(JointTrajectory, '/hw/emg', self.on_batch, STREAM_QOS)
        self.create_service(Trigger, '~/calibrate_mvc', self.on_calibrate)

    def on_parameters_changed(self, changed: dict) -> None:
        self.processor.configure(self.params)
        self.stamps.max_age = self.params['plausibility.max_age']
        self.stamps.max_future = self.params['plausibility.max_future']

    def on_calibrate(self, request, response):
        if self.calibration is not None:
            response.success = False
            response.message = 'an MVC calibration is already running'
            return response
        duration = self.params['mvc.calibration_duration']
        self.calibration = MvcCalibration(int(round(duration * self.fs)), len(self.channels))
        response.success = True
        response.message = (f'recording the peak envelope of each channel for {duration:g} s: ask for '
                            f'maximal voluntary contractions now')
        return response

    def on_batch(self, msg: JointTrajectory) -> None:
        points = msg.points
        rows = [point.positions for point in points]
        offsets_ns = [points[i].time_from_start.sec * 1_000_000_000 + points[i].time_from_start.nanosec
                      for i in ((0, -1) if points else ())]
        offsets = [offset * 1e-9 for offset in offsets_ns]
        problem = batch_problem(msg.joint_names, rows, offsets, self.channels, self.fs)
        if problem is not None:
            kind, message, values = problem
            self.report(kind, message, values)
            return
        block = np.array(rows, dtype=float)
        order = reorder_columns(msg.joint_names, self.channels)
        if order is not None:
            block = block[:, order]
        problem = non_finite_problem(block, self.channels)
        if problem is not None:
            channel, message, values = problem
            self.report(f'{channel}: non-finite', message, values)
            return
        last_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec + offsets_ns[-1]
        first = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        last = last_ns * 1e-9
        stamp_problem = self.stamps.problem(last, self.now())
        if stamp_problem is not None:
            self.report(*stamp_problem)
            return
        gap = continuity_problem(self._previous_end, first, self.fs)
        if gap is not None:
            self.report('continuity', gap[0], gap[1], Level.WARN)
        self._previous_end = last

        envelope = self.processor.process(block)
        self._calibrate(envelope)
        problems = self.processor.electrode_problems()
        if problems:
            for channel, kind, message, values in problems:
                self.report(f'{channel}: {kind}', message, values,
                            Level.WARN if kind == 'above MVC' else Level.ERROR)
        out = self._out
        out.header.stamp.sec, out.header.stamp.nanosec = divmod(last_ns, 1_000_000_000)
        out.position = self.processor.activation.tolist()
        out.effort = self.processor.envelope.tolist()
        self._pub.publish(out)
        self.published += 1

    def _calibrate(self, envelope: np.ndarray) -> None:
        if self.calibration is None:
            return
        self.calibration.feed(envelope)
        if not self.calibration.done:
            return
        peaks, self.calibration = self.calibration.peaks, None
        usable = {f'mvc.{channel}': float(peak) for channel, peak in zip(self.channels, peaks)
                  if peak >= MIN_MVC_MV}
        unusable = [channel for channel, peak in zip(self.channels, peaks) if peak < MIN_MVC_MV]
        results = self.set_parameters([Parameter(name, value=value) for name, value in usable.items()])
        refused = {parameter: result.reason for parameter, result in zip(usable, results) if not result.successful}
        level = Level.WARN if unusable or refused else Level.OK
        message = 'MVC calibration done' + (f'; no usable peak for {unusable} (references kept)' if unusable else '') \
            + (f'; refused {refused}' if refused else '')
        self.publish_diagnostics([Report(f'{self.get_name()}: mvc calibration', level, message,
                                         {name: f'{value:.4f} mV' for name, value in usable.items()})])


def main():
    node_main(EmgNode)


if __name__ == '__main__':
    main()
