"""IMUs: raw specific force and angular rate in, orientation, bias-free rate and covariances out.

Plain streaming module (no rclpy); `exo_sensors.imu_node` wraps it.

Orientation filter: Mahony's explicit complementary filter on SO(3) (Mahony, Hamel & Pflimlin
2008, IEEE Trans. Automatic Control 53(5):1203), proportional term only, with the accelerometer
correction weighted by how close |a| is to g (the adaptive gain of Valenti, Dryanovski & Xiao
2015, Sensors 15(8):19302: full weight below `filter.accel_error_low` x g of deviation, none
above `filter.accel_error_high` x g). Why this one: no magnetometer is fitted (a steel frame
and motors next to it would corrupt one), so only tilt is observable and a full Kalman filter
has nothing more to fuse; the complementary filter has proven almost-global stability, a
single gain with a physical meaning (`filter.gain` in rad/s is the crossover: slower than it
the accelerometer's gravity direction wins, faster the gyro wins) and is made of quaternion
products and rotations only, all done with transforms3d. Madgwick's filter behaves alike but
its gradient step is hand-written quaternion algebra and its gain has no such reading. The
gyro bias is not left to an integral term: it is measured while the segment is at rest
(|omega| < `rest.gyro_threshold` and ||a| - g| < `rest.accel_threshold` for `rest.duration`),
as an exponential average with time constant `rest.bias_time_constant`; the gyro and
accelerometer noise variances are measured at rest the same way.

Frames and conventions (REP-103/145): orientation is the IMU frame relative to a world frame
with z up; its yaw is relative to the heading at start-up (unobservable without a
magnetometer). Linear acceleration is the raw specific force (gravity included), angular
velocity the bias-corrected rate.

Covariances (diagonal, rad^2 and (m/s^2)^2, about the world x, y, z axes for orientation):
- angular velocity: gyro noise variance (measured at rest, else `gyro.noise_stddev`^2) plus
  the bias uncertainty (after a rest: noise variance x dt / (2 tau); before: `gyro.bias_stddev`^2);
- linear acceleration: accelerometer noise variance (measured at rest, else
  `accel.noise_stddev`^2);
- orientation: each angle's standard deviation grows per sample by the gyro noise (random walk)
  plus the bias uncertainty x dt (drift, counted as fully correlated); roll and pitch relax
  towards `orientation.tilt_stddev` (the accelerometer-aided floor: mounting and gravity
  direction errors) at the filter's rate while the accelerometer correction is active; yaw never
  relaxes, so its variance grows for the whole session.

Plausibility: non-finite values, an axis beyond the sensor's full scale (range parameters), and stale,
future, duplicate or out-of-order stamps refuse the sample (not published, not filtered).
"""
import math
from typing import Mapping, Optional, Sequence

import numpy as np
from transforms3d import quaternions

from exo_common.params import ParamSpec
from exo_sensors.stamps import StampCheck

GRAVITY = 9.80665  # m/s^2, standard gravity
UP = np.array([0.0, 0.0, 1.0])

PARAMS = [
    ParamSpec('filter.gain', 1.0,
              'complementary filter crossover: slower orientation changes follow the accelerometer, '
              'faster ones the gyro', 'rad/s', 0.01, 20.0),
    ParamSpec('filter.accel_error_low', 0.1,
              'full accelerometer correction while ||a| - g| is below this fraction of g', '', 0.0, 1.0),
    ParamSpec('filter.accel_error_high', 0.2,
              'no accelerometer correction once ||a| - g| exceeds this fraction of g', '', 0.01, 2.0),
    ParamSpec('rest.gyro_threshold', 0.1, 'the segment is at rest while |omega| stays below this',
              'rad/s', 0.001, 1.0),
    ParamSpec('rest.accel_threshold', 0.3, 'the segment is at rest while ||a| - g| stays below this',
              'm/s^2', 0.01, 3.0),
    ParamSpec('rest.duration', 0.25, 'rest must last this long before the gyro bias is measured', 's',
              0.0, 10.0),
    ParamSpec('rest.bias_time_constant', 1.0, 'averaging time constant of the gyro bias and noise at rest',
              's', 0.05, 60.0),
    ParamSpec('gyro.noise_stddev', 0.01, 'gyro noise per sample until measured at rest', 'rad/s',
              1e-5, 1.0),
    ParamSpec('gyro.bias_stddev', 0.02, 'gyro bias uncertainty until measured at rest', 'rad/s',
              1e-5, 1.0),
    ParamSpec('gyro.range', 34.9, 'gyro full scale per axis; larger rates are refused as implausible', 'rad/s',
              1.0, 100.0),
    ParamSpec('accel.noise_stddev', 0.05, 'accelerometer noise per sample until measured at rest',
              'm/s^2', 1e-5, 5.0),
    ParamSpec('accel.range', 157.0, 'accelerometer full scale per axis; larger values are refused as implausible',
              'm/s^2', 10.0, 2000.0),
    ParamSpec('orientation.tilt_stddev', 0.035,
              'roll/pitch uncertainty reached while the accelerometer correction is active', 'rad',
              0.001, 1.0),
    ParamSpec('plausibility.max_age', 0.05,
              'samples older than this (device stamp against the node clock) are refused', 's',
              0.001, 5.0),
    ParamSpec('plausibility.max_future', 0.005,
              'samples stamped further ahead of the node clock than this are refused', 's', 0.0, 5.0),
]


def check_params(params: Mapping[str, object]) -> Optional[str]:
    """A reason to refuse a combination of IMU parameters, or None."""
    if params['filter.accel_error_low'] >= params['filter.accel_error_high']:
        return 'filter.accel_error_low must be below filter.accel_error_high'
    return None


def tilt_quaternion(accel: Sequence[float]) -> np.ndarray:
    """The orientation (w, x, y, z) with zero yaw whose up axis matches a measured specific force."""
    up_body = np.asarray(accel, dtype=float) / np.linalg.norm(accel)
    # the rotation taking the body's measured up direction onto the world's up axis
    axis = np.cross(up_body, UP)
    sin_angle = np.linalg.norm(axis)
    angle = math.atan2(sin_angle, float(up_body @ UP))
    if sin_angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0]) if angle < 1.0 else np.array([0.0, 1.0, 0.0, 0.0])
    return quaternions.axangle2quat(axis / sin_angle, angle)


class ImuFilter:
    """Orientation, gyro bias and covariances of one IMU, one sample at a time.

    Args:
        params: the PARAMS values (name -> value).

    After update() returned None, read `orientation` (w, x, y, z), `angular_velocity`,
    `linear_acceleration` and the three 9-element row-major covariances.
    """

    def __init__(self, params: Mapping[str, object]):
        self.stamps = StampCheck(params['plausibility.max_age'], params['plausibility.max_future'])
        self.configure(params)
        self.orientation: Optional[np.ndarray] = None
        self.bias = np.zeros(3)
        self.bias_measured = False
        self._gyro_var = params['gyro.noise_stddev'] ** 2
        self._accel_var = params['accel.noise_stddev'] ** 2
        self._bias_var = params['gyro.bias_stddev'] ** 2
        self._tilt_sd = self._yaw_sd = 0.0
        self._rest_since: Optional[float] = None
        self._rest_samples = 0
        self._last_stamp: Optional[float] = None
        self.angular_velocity = np.zeros(3)
        self.linear_acceleration = np.zeros(3)

    def configure(self, params: Mapping[str, object]) -> None:
        """Apply (live) parameter values."""
        self.p = dict(params)
        self.stamps.max_age = params['plausibility.max_age']
        self.stamps.max_future = params['plausibility.max_future']

    def update(self, stamp: float, now: float, accel: Sequence[float], gyro: Sequence[float]
               ) -> Optional[tuple[str, str, dict]]:
        """Process one sample; None when accepted, else (kind, message, values) and nothing changes.

        Args:
            stamp: device stamp (s); now: node clock (s), 0 while not running.
            accel: specific force (m/s^2), gyro: angular rate (rad/s), both in the IMU frame.
        """
        values = (*accel, *gyro)
        if not all(math.isfinite(v) for v in values):
            return 'non-finite', f'non-finite sample: accel {list(accel)}, gyro {list(gyro)}', \
                {'accel': list(accel), 'gyro': list(gyro)}
        accel = np.array(accel, dtype=float)
        gyro = np.array(gyro, dtype=float)
        accel_norm = float(np.linalg.norm(accel))
        gyro_norm = float(np.linalg.norm(gyro))
        accel_peak, gyro_peak = float(np.abs(accel).max()), float(np.abs(gyro).max())
        if accel_peak > self.p['accel.range'] or gyro_peak > self.p['gyro.range']:
            return 'out of range', (f'implausible sample beyond the sensor range: accel {accel.tolist()} m/s^2 '
                                    f'(range {self.p["accel.range"]}), gyro {gyro.tolist()} rad/s (range '
                                    f'{self.p["gyro.range"]})'), {'accel': accel.tolist(), 'gyro': gyro.tolist()}
        if accel_norm < 1e-6:
            return 'zero accel', 'accelerometer reads exactly zero (sensor not running?)', {'accel_norm': 0.0}
        stamp_problem = self.stamps.problem(stamp, now)
        if stamp_problem is not None:
            return stamp_problem

        last, self._last_stamp = self._last_stamp, stamp
        self._update_rest(stamp, accel, accel_norm, gyro, gyro_norm, None if last is None else stamp - last)
        self.angular_velocity = gyro - self.bias
        self.linear_acceleration = accel
        if self.orientation is None or last is None:
            self.orientation = tilt_quaternion(accel)
            self._tilt_sd = self.p['orientation.tilt_stddev']
            return None
        self._propagate(stamp - last, accel, accel_norm)
        return None

    def _update_rest(self, stamp, accel, accel_norm, gyro, gyro_norm, period) -> None:
        at_rest = gyro_norm < self.p['rest.gyro_threshold'] and \
            abs(accel_norm - GRAVITY) < self.p['rest.accel_threshold']
        if not at_rest:
            self._rest_since = None
            return
        if self._rest_since is None:
            self._rest_since = stamp
            self._rest_samples = 0
        if period is None or stamp - self._rest_since < self.p['rest.duration']:
            return
        # a plain mean over the first time constant of rest, then an exponential average
        self._rest_samples += 1
        weight = min(1.0, max(period / self.p['rest.bias_time_constant'], 1.0 / self._rest_samples))
        deviation = gyro - self.bias
        self.bias = self.bias + weight * deviation
        if self.bias_measured:
            self._gyro_var += weight * (float(deviation @ deviation) / 3.0 - self._gyro_var)
            accel_deviation = accel_norm - GRAVITY
            self._accel_var += weight * (accel_deviation * accel_deviation - self._accel_var)
        self.bias_measured = True
        tau = self.p['rest.bias_time_constant']
        if stamp - self._rest_since >= self.p['rest.duration'] + tau:  # the average has settled
            self._bias_var = self._gyro_var * period / (2.0 * tau)

    def _propagate(self, period: float, accel: np.ndarray, accel_norm: float) -> None:
        # predict with the gyro, then correct the prediction towards the measured gravity
        # direction (comparing with the previous estimate would lag one sample behind)
        q = quaternions.qmult(self.orientation, quaternions.qexp(np.concatenate(
            ([0.0], self.angular_velocity * (0.5 * period)))))
        error = abs(accel_norm - GRAVITY) / GRAVITY
        low, high = self.p['filter.accel_error_low'], self.p['filter.accel_error_high']
        weight = 1.0 if error <= low else max(0.0, (high - error) / (high - low))
        gain = self.p['filter.gain']
        if weight > 0.0:
            up_estimated = quaternions.rotate_vector(UP, quaternions.qconjugate(q))
            correction = np.cross(accel / accel_norm, up_estimated) * (gain * weight)
            q = quaternions.qmult(q, quaternions.qexp(np.concatenate(([0.0], correction * (0.5 * period)))))
        self.orientation = q / np.linalg.norm(q)

        noise_step = math.sqrt(self._gyro_var) * period
        drift_step = math.sqrt(self._bias_var) * period
        self._yaw_sd = math.hypot(self._yaw_sd, noise_step) + drift_step
        tilt_sd = math.hypot(self._tilt_sd, noise_step) + drift_step
        if weight > 0.0:
            floor = self.p['orientation.tilt_stddev']
            tilt_sd += (floor - tilt_sd) * (1.0 - math.exp(-gain * weight * period))
        self._tilt_sd = tilt_sd

    @property
    def orientation_covariance(self) -> list:
        tilt, yaw = self._tilt_sd ** 2, self._yaw_sd ** 2
        return [tilt, 0.0, 0.0, 0.0, tilt, 0.0, 0.0, 0.0, yaw]

    @property
    def angular_velocity_covariance(self) -> list:
        variance = self._gyro_var + self._bias_var
        return [variance, 0.0, 0.0, 0.0, variance, 0.0, 0.0, 0.0, variance]

    @property
    def linear_acceleration_covariance(self) -> list:
        variance = self._accel_var
        return [variance, 0.0, 0.0, 0.0, variance, 0.0, 0.0, 0.0, variance]
