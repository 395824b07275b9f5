"""The patient inside the exoskeleton: voluntary joint torques, spasticity, muscle activation.

The patient tries to walk the healthy pattern of a device with an upright pelvis
(exo_common.normative.device_curves at the belt speed, the same pattern the gait controller's
reference follows) with its own time-based gait phase at the healthy cadence: a PD law toward the pattern plus a sense of
the gravity and inertia of its own legs, limited per joint and direction by the profile's
strength, plus velocity-dependent stretch-reflex resistance (spasticity). Muscle activations
follow the normative on-windows and scale with the torque the patient actually produces, so the
EMG synthesised from them carries the patient's intent.

Plain module (no rclpy, no MuJoCo).
"""
from dataclasses import dataclass, field
import functools
import pathlib

import numpy as np
import yaml

from exo_common import normative
from exo_common.joints import EMG_MUSCLES, JOINTS_PER_LEG, LEGS, joint_index
from exo_common.params import ConfigError
from exo_common.paths import share_path

PROFILE_NAMES = ('healthy', 'stroke_left_hemiparesis', 'stroke_right_hemiparesis',
                 'incomplete_sci', 'complete_sci')
DIRECTIONS = {'hip': ('flexion', 'extension'), 'knee': ('flexion', 'extension'),
              'ankle': ('dorsiflexion', 'plantarflexion')}  # (positive, negative) joint torque

# Healthy maximal voluntary isometric joint torques, N m per kg body mass, rounded from the
# peak values of healthy young adults in Anderson, Madigan & Nussbaum (2007), "Maximum voluntary
# joint torque as a function of joint angle and angular velocity", J Biomech 40:3105-3113
# (hip ext ~2.5, hip flex ~1.9, knee ext ~2.9, knee flex ~1.5, ankle plantar ~1.9,
# ankle dorsi ~0.5 N m/kg in men; women lower). Kept conservative here.
HEALTHY_MAX_NM_PER_KG = {
    'hip': {'flexion': 1.6, 'extension': 2.0},
    'knee': {'flexion': 1.3, 'extension': 2.4},
    'ankle': {'dorsiflexion': 0.5, 'plantarflexion': 1.8},
}
# Tracking law of the patient's motor control toward the healthy pattern (model values, N m
# per rad and N m s per rad, per kg body mass): stiff enough that the healthy patient walks the
# pattern unaided, soft enough to remain a person rather than a position servo.
TRACKING_KP_PER_KG = {'hip': 8.0, 'knee': 8.0, 'ankle': 4.0}
TRACKING_KD_PER_KG = {'hip': 0.30, 'knee': 0.25, 'ankle': 0.08}

# Muscle -> (joint, direction of joint torque it produces) for the contract EMG muscles.
MUSCLE_ACTIONS = {
    'rectus_femoris': (('hip', +1), ('knee', -1)),      # hip flexor, knee extensor
    'biceps_femoris': (('hip', -1), ('knee', +1)),      # hip extensor, knee flexor
    'tibialis_anterior': (('ankle', +1),),              # dorsiflexor
    'gastrocnemius': (('ankle', -1), ('knee', +1)),     # plantarflexor, knee flexor
}
# Tonic drive inside an on-window when the required torque is small (fraction of MVC), and
# the activity outside the windows (fraction of the in-window activity): model values.
TONIC_DRIVE = 0.08
OFF_WINDOW_LEVEL = 0.05
WINDOW_EDGE = 0.03  # raised-cosine ramp at each window edge, fraction of the gait cycle
PHASE_TABLE_SIZE = 1000


@dataclass(frozen=True)
class Spasticity:
    """Stretch reflex of the muscle group stretched by `stretch` motion of a joint."""
    stretch_sign: float     # +1: positive joint velocity stretches it; -1: negative
    gain: float             # N m s/rad
    threshold: float        # rad/s


@dataclass(frozen=True)
class PatientProfile:
    """An impairment profile (config/patients/<name>.yaml).

    strength: (leg, joint, direction) -> fraction of healthy maximal torque.
    spasticity: (leg, joint) -> Spasticity.
    """
    name: str
    description: str
    strength: dict
    spasticity: dict = field(default_factory=dict)


def profile_path(name: str) -> pathlib.Path:
    return share_path('config', 'patients', f'{name}.yaml')


def load_profile(name_or_path) -> PatientProfile:
    """Read and check a patient profile by name (config/patients/<name>.yaml) or path.

    Raises:
        ConfigError: missing file, bad YAML, missing or out-of-range value (message names the
            file and key).
    """
    path = pathlib.Path(name_or_path)
    if path.suffix != '.yaml':
        path = profile_path(str(name_or_path))
    try:
        tree = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f'{path}: cannot read patient profile ({exc.strerror}); known profiles: '
                          f'{", ".join(PROFILE_NAMES)}') from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML: {exc}') from exc
    if not isinstance(tree, dict):
        raise ConfigError(f'{path}: expected a mapping')
    strength = {}
    for leg in LEGS:
        for joint in JOINTS_PER_LEG:
            for direction in DIRECTIONS[joint]:
                key = f'{joint}_{direction}'
                value = _get(tree, path, 'strength', leg, key)
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                    raise ConfigError(f'{path}: strength.{leg}.{key} must be a fraction 0..1, got {value!r}')
                strength[(leg, joint, direction)] = float(value)
    spasticity = {}
    for leg, joints in (tree.get('spasticity') or {}).items():
        if leg not in LEGS or not isinstance(joints, dict):
            raise ConfigError(f'{path}: spasticity.{leg}: expected a leg (left/right) with joints')
        for joint, entry in joints.items():
            if joint not in JOINTS_PER_LEG:
                raise ConfigError(f'{path}: spasticity.{leg}.{joint}: unknown joint')
            spasticity[(leg, joint)] = _spasticity(path, f'spasticity.{leg}.{joint}', joint, entry)
    return PatientProfile(name=str(tree.get('name', path.stem)),
                          description=str(tree.get('description', '')),
                          strength=strength, spasticity=spasticity)


def _get(tree, path, *keys):
    node = tree
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise ConfigError(f'{path}: missing {".".join(keys[:depth + 1])}')
        node = node[key]
    return node


def _spasticity(path, where, joint, entry) -> Spasticity:
    if not isinstance(entry, dict):
        raise ConfigError(f'{path}: {where}: expected stretch, gain, threshold')
    stretch = entry.get('stretch')
    if stretch not in DIRECTIONS[joint]:
        raise ConfigError(f'{path}: {where}.stretch must be one of {DIRECTIONS[joint]}, got {stretch!r}')
    values = {}
    for key in ('gain', 'threshold'):
        value = entry.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1e3:
            raise ConfigError(f'{path}: {where}.{key} must be a number >= 0, got {value!r}')
        values[key] = float(value)
    sign = 1.0 if stretch == DIRECTIONS[joint][0] else -1.0
    return Spasticity(stretch_sign=sign, **values)


def _window_table(windows, size: int) -> np.ndarray:
    """On-window indicator over one cycle with raised-cosine edges, sampled at size points."""
    phase = np.arange(size) / size
    level = np.zeros(size)
    for start, end in windows:
        for shift in (-1.0, 0.0, 1.0):
            rise = np.clip((phase - (start + shift)) / WINDOW_EDGE + 0.5, 0.0, 1.0)
            fall = np.clip(((end + shift) - phase) / WINDOW_EDGE + 0.5, 0.0, 1.0)
            level = np.maximum(level, 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall)))
    return OFF_WINDOW_LEVEL + (1.0 - OFF_WINDOW_LEVEL) * level


@functools.lru_cache(maxsize=None)
def _group_pattern_tables(group: int) -> np.ndarray:
    """One speed group's pattern, stacked (3, 3, PHASE_TABLE_SIZE + 1): angles (rad), slopes
    (rad per cycle) and curvatures (rad per cycle^2)."""
    grid = np.arange(PHASE_TABLE_SIZE + 1) / PHASE_TABLE_SIZE
    angle, _ = normative.group_device_curves(group, grid)
    slope = np.gradient(angle, grid, axis=1)
    tables = np.stack((angle, slope, np.gradient(slope, grid, axis=1)))
    tables.setflags(write=False)
    return tables


class PatientModel:
    """Voluntary torque and muscle activation of one patient, in JOINT_NAMES order.

    Args:
        profile: the impairment profile.
        body_mass: kg (scales strength and tracking gains).
        height: m (pattern timing and the dimensionless speed of the normative curves).
    """

    def __init__(self, profile: PatientProfile, body_mass: float = 75.0, height: float = 1.75):
        self.profile = profile
        self.body_mass = body_mass
        self.height = height
        joints = [(leg, joint) for leg in LEGS for joint in JOINTS_PER_LEG]
        self.flex_limit = np.array([profile.strength[(leg, j, DIRECTIONS[j][0])]
                                    * HEALTHY_MAX_NM_PER_KG[j][DIRECTIONS[j][0]] * body_mass for leg, j in joints])
        self.ext_limit = np.array([profile.strength[(leg, j, DIRECTIONS[j][1])]
                                   * HEALTHY_MAX_NM_PER_KG[j][DIRECTIONS[j][1]] * body_mass for leg, j in joints])
        self.healthy_flex = np.array([HEALTHY_MAX_NM_PER_KG[j][DIRECTIONS[j][0]] * body_mass for _, j in joints])
        self.healthy_ext = np.array([HEALTHY_MAX_NM_PER_KG[j][DIRECTIONS[j][1]] * body_mass for _, j in joints])
        self.kp = np.array([TRACKING_KP_PER_KG[j] * body_mass for _, j in joints])
        self.kd = np.array([TRACKING_KD_PER_KG[j] * body_mass for _, j in joints])
        # Voluntary drive is limited by strength: a muscle group with no strength sends no drive.
        self.drive = np.array([max(profile.strength[(leg, j, d)] for d in DIRECTIONS[j]) for leg, j in joints])
        spastic = [profile.spasticity.get(key) for key in joints]
        self.spastic_sign = np.array([s.stretch_sign if s else 0.0 for s in spastic])
        self.spastic_gain = np.array([s.gain if s else 0.0 for s in spastic])
        self.spastic_threshold = np.array([s.threshold if s else 0.0 for s in spastic])
        self.has_spasticity = bool(self.spastic_gain.any())
        self._windows = {m: _window_table(w, PHASE_TABLE_SIZE)
                         for m, w in normative.emg_windows().items() if m in EMG_MUSCLES}
        self._pattern_speed = None
        self.set_speed(1.0 / 3.6 * 2.0)

    # --- pattern --------------------------------------------------------------------------

    def set_speed(self, speed_mps: float) -> None:
        """Walk the healthy pattern of this belt speed (tables rebuilt only on a real change)."""
        speed_mps = max(float(speed_mps), 0.05)
        if self._pattern_speed is not None and abs(speed_mps - self._pattern_speed) < 0.005:
            return
        self._pattern_speed = speed_mps
        # Mixed from per-speed-group tables (the curves and their derivatives are linear in the
        # group weights): a belt ramp changes the speed every few ms, and rebuilding the
        # tables from the data each time cost the physics step a millisecond.
        self._angle_table, self._slope_table, self._curvature_table = normative.mix_speed_groups(
            speed_mps, self.height, _group_pattern_tables)
        self.cycle_rate = 1.0 / normative.stride_time_s(speed_mps, self.height)  # cycles/s

    def posture_phase(self, q) -> float:
        """The left leg's phase whose pattern posture best matches the legs' hip and knee angles
        q (6,), the right leg half a cycle behind (least squares over the phase table)."""
        table = self._angle_table[:2, :PHASE_TABLE_SIZE]
        left = (table[0] - q[0]) ** 2 + (table[1] - q[1]) ** 2
        right = (table[0] - q[3]) ** 2 + (table[1] - q[4]) ** 2
        cost = left + np.roll(right, PHASE_TABLE_SIZE // 2)
        return float(np.argmin(cost)) / PHASE_TABLE_SIZE

    def reference(self, phases) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Healthy joint angles, velocities and accelerations (6,) at the legs' phases (left, right)."""
        left, right = (int(p % 1.0 * PHASE_TABLE_SIZE) for p in phases)
        rate = self.cycle_rate
        q = np.concatenate((self._angle_table[:, left], self._angle_table[:, right]))
        qd = np.concatenate((self._slope_table[:, left], self._slope_table[:, right])) * rate
        qdd = np.concatenate((self._curvature_table[:, left], self._curvature_table[:, right])) * (rate * rate)
        return q, qd, qdd

    # --- torques --------------------------------------------------------------------------

    def voluntary_torque(self, q_ref, qd_ref, q, qd, bias) -> np.ndarray:
        """Torque (6,) the patient produces toward the pattern, within its strength.

        Args:
            q_ref, qd_ref: pattern angles / velocities (6,).
            q, qd: actual joint angles / velocities (6,).
            bias: the patient's sense of the torques that move its legs along the pattern
                (inverse dynamics of the pattern's accelerations, gravity included) (6,).
        """
        desired = self.drive * (self.kp * (q_ref - q) + self.kd * (qd_ref - qd) + bias)
        return np.clip(desired, -self.ext_limit, self.flex_limit)

    def spastic_torque(self, qd) -> np.ndarray:
        """Stretch-reflex resistance (6,), opposing stretch faster than the threshold."""
        if not self.has_spasticity:
            return np.zeros(6)
        stretch_speed = self.spastic_sign * qd - self.spastic_threshold
        return -self.spastic_sign * self.spastic_gain * np.maximum(stretch_speed, 0.0)

    # --- muscles --------------------------------------------------------------------------

    def activation(self, phases, voluntary, spastic) -> np.ndarray:
        """Activation 0..1 of the EMG_CHANNELS muscles (8,).

        Inside its normative on-window a muscle carries a tonic drive plus the torque the
        patient actually produces in that muscle's direction, relative to healthy maximal
        torque; a stretch reflex (spasticity) activates the stretched muscle at any phase.
        """
        activation = np.empty(8)
        for leg_index, leg in enumerate(LEGS):
            row = int(phases[leg_index] % 1.0 * PHASE_TABLE_SIZE)
            for muscle_index, muscle in enumerate(EMG_MUSCLES):
                effort = 0.0
                reflex = 0.0
                drive = 0.0
                for joint, sign in MUSCLE_ACTIONS[muscle]:
                    j = joint_index(leg, joint)
                    healthy = self.healthy_flex[j] if sign > 0 else self.healthy_ext[j]
                    effort = max(effort, sign * voluntary[j] / healthy)
                    reflex = max(reflex, sign * spastic[j] / healthy)
                    drive = max(drive, self.drive[j])
                window = self._windows[muscle][row]
                activation[leg_index * 4 + muscle_index] = window * (drive * TONIC_DRIVE + effort) + reflex
        return np.clip(activation, 0.0, 1.0)


