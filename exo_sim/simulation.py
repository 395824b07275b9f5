"""ExoSimulation: exoskeleton + patient on a treadmill with body-weight support, and its devices.

Plain core (no rclpy): the ROS node (exo_sim.mujoco_sim_node) and closed-loop tests drive it
the same way:

    sim = ExoSimulation('stroke_left_hemiparesis', speed_kmh=2.0, bws_percent=30.0, seed=1)
    for _ in range(1000):
        sample = sim.encoders()          # quantised positions, measured torques, device stamp
        sim.step(controller(sample))     # 6 torques in JOINT_NAMES order
        imu_samples = sim.imus()         # new IMU samples (200 Hz)
        batch = sim.emg()                # a finished raw EMG batch or None

Stamps are device times: `time_origin + time` (the node sets time_origin to the wall clock at
start-up, see docs/INTERFACES.md).
"""
from collections import deque
from dataclasses import dataclass, field, replace

import mujoco
import numpy as np

from exo_common.description import load_description
from exo_common.diagnostics import Level, Problems
from exo_common.joints import EMG_CHANNELS, EMG_MUSCLES, IMU_FRAMES, JOINT_NAMES, LEGS
from exo_sim import devices
from exo_sim.model import (CONTACT_OFF_N, CONTACT_ON_N, BELT_WRAP_M, box_corners, build_model,
                           set_torque_bandwidth, time_constant_from_bandwidth)
from exo_sim.patient import PatientModel, PatientProfile, load_profile

G = 9.81
KMH = 1.0 / 3.6
# A heel strike is a contact after at least MIN_SWING_S without load on that foot; a contact
# ends after CONTACT_RELEASE_S without load (rejects bounces at touch-down and toe-off).
MIN_SWING_S = 0.15
CONTACT_RELEASE_S = 0.03
# Muscles' EMG motion artefacts come from the segment they lie on: thigh (rectus femoris,
# biceps femoris) or shank (tibialis anterior, gastrocnemius); IMU_FRAMES index per channel.
_ARTEFACT_SEGMENT = {'rectus_femoris': 'thigh', 'biceps_femoris': 'thigh',
                     'tibialis_anterior': 'shank', 'gastrocnemius': 'shank'}


@dataclass
class SimOptions:
    """Everything tunable about the simulation besides patient, speed, support and seed.

    actuator_bandwidth_hz: first-order torque bandwidth of the joint drives. 20 Hz default:
        series-elastic Bowden-cable drives of the LOPES gait exoskeleton reached about 20 Hz
        for small torques (Veneman et al. 2006, Int J Robot Res 25:261-281); geared drives
        with torque control are of the same order.
    bws_stiffness_n_per_m / bws_damping_n_s_per_m: spring-like harness around the upright
        pelvis height (dynamic unloading systems keep the force nearly constant over the
        4-5 cm vertical pelvis excursion of gait; model values).
    bws_rate_percent_per_s, treadmill_accel_mps2: how fast support and belt speed follow a new
        setting (smooth changes).
    entrainment_hz: how fast the patient's own gait rhythm is pulled toward the rhythm its legs
        are actually moved in (cycles/s per cycle of phase difference, judged from the hip and
        knee posture every entrainment_period_s). Human walking entrains to periodic mechanical
        perturbations (Ahn & Hogan 2012, PLoS ONE 7:e31767), and patients walking in a driven
        orthosis fall into its rhythm; a pattern generator deaf to its legs would fight a
        guiding exoskeleton for the whole session. 1 /s is a model value: a phase difference
        halves in about 0.7 s, under one stride (0.5 /s left some simulated stroke sessions
        locked a quarter cycle out of step with a stiff guidance). 0 = an unyielding rhythm.
    exo_weight_compensated: the device carries the exoskeleton's own weight at the pelvis, as
        the Lokomat's parallelogram does (Colombo et al. 2000), so body-weight support % refers
        to the patient's weight only.
    """
    actuator_bandwidth_hz: float = 20.0
    encoder_bits: int = devices.ENCODER_BITS
    effort_noise_nm: float = 0.1
    imu_rate_hz: float = 100.0
    imu: devices.ImuSpec = field(default_factory=devices.ImuSpec)
    emg: devices.EmgSpec = field(default_factory=devices.EmgSpec)
    emg_batch_samples: int = 20
    bws_stiffness_n_per_m: float = 2000.0
    bws_damping_n_s_per_m: float = 300.0
    bws_rate_percent_per_s: float = 20.0
    treadmill_accel_mps2: float = 0.25
    exo_weight_compensated: bool = True
    entrainment_hz: float = 1.0
    entrainment_period_s: float = 0.01
    time_origin: float = 0.0


@dataclass
class EncoderSample:
    stamp: float            # s, device time
    position: np.ndarray    # (6,) rad, quantised
    effort: np.ndarray      # (6,) N m, measured actuator torque


@dataclass
class ImuSample:
    frame: str
    stamp: float            # s
    accel: np.ndarray       # (3,) m/s^2 specific force in the sensor frame (gravity included)
    gyro: np.ndarray        # (3,) rad/s


@dataclass
class EmgBatch:
    stamp: float            # s, time of samples[0]
    fs: float               # Hz
    channels: tuple         # EMG_CHANNELS
    samples: np.ndarray     # (n, 8) mV


@dataclass
class Truth:
    time: float                   # s since start
    joint_position: np.ndarray    # (6,) rad, exact
    joint_velocity: np.ndarray    # (6,) rad/s
    phase: np.ndarray             # (2,) left, right phase of the patient's own pattern, 0..1
    patient_torque: np.ndarray    # (6,) N m voluntary torque
    spastic_torque: np.ndarray    # (6,) N m stretch-reflex torque
    actuator_torque: np.ndarray   # (6,) N m applied by the exoskeleton
    activation: np.ndarray        # (8,) muscle activation 0..1, EMG_CHANNELS order
    contact: tuple                # (left, right) foot on the belt
    heel_strikes: dict            # leg -> tuple of heel-strike times (s since start)
    pelvis_height: float          # m, hip-joint centre above the belt surface
    belt_speed: float             # m/s, actual
    bws_percent: float            # actual support, % of patient weight


class ExoSimulation:
    """The simulated hardware boundary.

    Args:
        patient: profile name (config/patients/<name>.yaml) or a PatientProfile.
        speed_kmh: treadmill belt speed.
        bws_percent: body-weight support, % of the patient's weight.
        seed: seed of every noise source (same seed, same data).
        timestep: physics step (s).
        patient_height, patient_mass: the wearer (scales the URDF and the patient model).
        **options: fields of SimOptions.

    Raises:
        ConfigError: unknown patient profile or bad profile file.
        DescriptionError: bad height / mass.
        TypeError: unknown option.
    """

    def __init__(self, patient='healthy', speed_kmh=2.0, bws_percent=30.0, seed=0, timestep=0.001,
                 patient_height=1.75, patient_mass=75.0, **options):
        self.options = replace(SimOptions(), **options)
        self.profile = patient if isinstance(patient, PatientProfile) else load_profile(patient)
        self.description = load_description(patient_height, patient_mass)
        opts = self.options
        self.model, self.index = build_model(
            self.description, timestep, time_constant_from_bandwidth(opts.actuator_bandwidth_hz))
        self.data = mujoco.MjData(self.model)
        self.dt = self.model.opt.timestep
        self.patient = PatientModel(self.profile, patient_mass, patient_height)
        self.patient_mass = patient_mass
        self.exo_mass = self.description.total_mass - patient_mass
        self.problems = Problems()
        self.time = 0.0
        self.steps = 0

        seeds = np.random.SeedSequence(seed).spawn(3)
        self._encoder_rng, imu_rng, emg_rng = (np.random.default_rng(s) for s in seeds)
        self.encoder_resolution = devices.encoder_resolution(opts.encoder_bits)
        self._imu = devices.ImuArray(len(IMU_FRAMES), opts.imu_rate_hz, opts.imu, imu_rng)
        self.imu_period_steps = max(1, round(1.0 / (opts.imu_rate_hz * self.dt)))
        self._imu_queue: list[ImuSample] = []
        self._emg = devices.EmgSynth(len(EMG_CHANNELS), opts.emg, emg_rng)
        self.emg_fs = opts.emg.fs_hz
        batch_duration = opts.emg_batch_samples / self.emg_fs
        self.emg_period_steps = max(1, round(batch_duration / self.dt))
        self._emg_queue: deque[tuple] = deque(maxlen=100)  # (stamp, activation, artefact drive)
        self._emg_samples_due = 0
        segment = {f: i for i, f in enumerate(IMU_FRAMES)}
        self._artefact_imu = np.array([segment[f'{leg}_{_ARTEFACT_SEGMENT[m]}_imu']
                                       for leg in LEGS for m in EMG_MUSCLES])

        index = self.index
        self._jq = _as_slice(index.joint_qpos)
        self._jd = _as_slice(index.joint_dof)
        self._accel_rows = index.accel.ravel()
        self._gyro_rows = index.gyro.ravel()

        self._speed_target = self._speed_setting = float(speed_kmh) * KMH
        self.belt_speed = self._speed_target
        self.walking = True
        self._bws_target = float(bws_percent)
        self.bws_percent = self._bws_target
        self.patient.set_speed(self.belt_speed)

        self._phase = 0.0            # left leg; the right leg is half a cycle later
        self._entrain_rate = 0.0
        self._entrain_period = max(1, round(self.options.entrainment_period_s / self.dt))
        self._voluntary = np.zeros(6)
        self._spastic = np.zeros(6)
        self._voluntary_sum = np.zeros(6)
        self._spastic_sum = np.zeros(6)
        self._accel_norm_rest = None
        self._activation = np.zeros(8)
        self._contact = [False, False]
        self._loaded_at = [0.0, 0.0]
        self._heel_strikes = {leg: [] for leg in LEGS}
        self._zero = np.zeros(6)
        self._inverse_dynamics = np.zeros(self.model.nv)
        self._place_at_start()

    # --- set-up --------------------------------------------------------------------------

    def _place_at_start(self) -> None:
        """Joints on the patient's pattern at phase 0, lowest sole just on the belt, at rest."""
        model, data, index = self.model, self.data, self.index
        q_ref, _, _ = self.patient.reference((0.0, 0.5))
        data.qpos[self._jq] = q_ref
        data.qpos[index.pelvis_qpos] = 0.0
        mujoco.mj_forward(model, data)
        lowest = min(
            box_corners(data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3), model.geom_size[g])[:, 2].min()
            for g in (model.geom(f'{leg}_foot_collision').id for leg in LEGS))
        data.qpos[index.pelvis_qpos] = -lowest + 0.001
        data.act[:] = 0.0
        mujoco.mj_forward(model, data)

    # --- live settings -------------------------------------------------------------------

    def set_speed_kmh(self, speed_kmh: float) -> None:
        """New belt speed; the belt accelerates toward it at treadmill_accel_mps2."""
        self._speed_setting = max(0.0, float(speed_kmh)) * KMH
        if self.walking:
            self._speed_target = self._speed_setting

    def set_walking(self, walking: bool) -> None:
        """Start or stop the session: the belt runs up to (or down from) its set speed and the
        patient walks its pattern, or holds its current posture while the belt stands still.

        A Lokomat's treadmill runs only while the orthosis is active and stops with it; the
        simulator's node couples this to the safety supervisor's state.
        """
        self.walking = bool(walking)
        self._speed_target = self._speed_setting if self.walking else 0.0
        if self.steps == 0:  # before the first step the belt is simply at its speed
            self.belt_speed = self._speed_target
            self.patient.set_speed(self.belt_speed)

    def set_bws_percent(self, percent: float) -> None:
        """New body-weight support (% of patient weight), reached at bws_rate_percent_per_s."""
        self._bws_target = min(100.0, max(0.0, float(percent)))

    def set_actuator_bandwidth(self, bandwidth_hz: float) -> None:
        self.options.actuator_bandwidth_hz = float(bandwidth_hz)
        set_torque_bandwidth(self.model, bandwidth_hz)

    # --- stepping ------------------------------------------------------------------------

    def _command(self, command_nm) -> np.ndarray:
        """The command as 6 finite floats, else zeros and a recorded problem."""
        try:
            count = len(command_nm)
        except TypeError:
            count = -1
        if count != 6:
            self.problems.raise_('command', Level.ERROR,
                                 f'command has {count} values, expected 6 ({", ".join(JOINT_NAMES)}): zero torque',
                                 length=count)
            return self._zero
        try:
            values = np.asarray(command_nm, dtype=float)
        except (TypeError, ValueError):
            self.problems.raise_('command', Level.ERROR, 'command values are not numbers: zero torque')
            return self._zero
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            self.problems.raise_('command', Level.ERROR,
                                 f'command for {JOINT_NAMES[bad]} is {values[bad]}: zero torque',
                                 joint=JOINT_NAMES[bad], value=values[bad])
            return self._zero
        self.problems.clear('command')
        return values

    def step(self, command_nm) -> None:
        """One physics step with the requested actuator torques (N m, JOINT_NAMES order).

        A command of the wrong length, with NaN/Inf or not numeric gives zero torque and a
        'command' problem in self.problems; it never raises. Torques saturate at the URDF effort
        limits; the drives follow with their first-order bandwidth.
        """
        self.advance(command_nm)
        self.sample_devices()

    def sample_devices(self) -> None:
        """The IMU samples and EMG batch due at this step (step() does it; a real-time loop
        calls advance(), sends the encoder sample on, then this, off the control path)."""
        if self.steps % self.imu_period_steps == 0:
            self._sample_imus()
        if self.steps % self.emg_period_steps == 0:
            self._emg_batch()

    def advance(self, command_nm) -> None:
        """The physics step of step() without sampling the IMUs and EMG (see sample_devices)."""
        model, data, index, dt = self.model, self.data, self.index, self.dt
        data.ctrl[:] = self._command(command_nm)

        speed = self.belt_speed
        if speed != self._speed_target:
            limit = self.options.treadmill_accel_mps2 * dt
            speed += min(limit, max(-limit, self._speed_target - speed))
            self.belt_speed = speed
            self.patient.set_speed(speed)
        if self.bws_percent != self._bws_target:
            limit = self.options.bws_rate_percent_per_s * dt
            self.bws_percent += min(limit, max(-limit, self._bws_target - self.bws_percent))
        data.qvel[index.belt_dof] = -speed
        if data.qpos[index.belt_qpos] < -BELT_WRAP_M:
            data.qpos[index.belt_qpos] += BELT_WRAP_M

        opts = self.options
        support = self.bws_percent * 0.01 * self.patient_mass * G
        if opts.exo_weight_compensated:
            support += self.exo_mass * G
        data.qfrc_applied[index.pelvis_dof] = (
            support - opts.bws_stiffness_n_per_m * data.qpos[index.pelvis_qpos]
            - opts.bws_damping_n_s_per_m * data.qvel[index.pelvis_dof])

        qd = data.qvel[self._jd]
        if self.walking:
            rate = self.patient.cycle_rate
            if opts.entrainment_hz > 0.0:
                if self.steps % self._entrain_period == 0:
                    lead = self.patient.posture_phase(data.qpos[self._jq]) - self._phase
                    self._entrain_rate = opts.entrainment_hz * ((lead + 0.5) % 1.0 - 0.5)
                rate += self._entrain_rate
            self._phase = (self._phase + dt * rate) % 1.0
        q_ref, qd_ref, qdd_ref = self.patient.reference((self._phase, self._phase + 0.5))
        if not self.walking:  # standing: hold the posture of the current phase
            qd_ref, qdd_ref = np.zeros_like(qd_ref), np.zeros_like(qdd_ref)
        # The patient's sense of its legs' dynamics: inverse dynamics of the pattern's
        # accelerations at the current state (legs as a free chain; contact not included).
        data.qacc[:] = 0.0
        data.qacc[self._jd] = qdd_ref
        mujoco.mj_rne(model, data, 1, self._inverse_dynamics)
        voluntary = self.patient.voluntary_torque(q_ref, qd_ref, data.qpos[self._jq], qd,
                                                  self._inverse_dynamics[self._jd])
        spastic = self.patient.spastic_torque(qd)
        data.qfrc_applied[self._jd] = voluntary + spastic
        self._voluntary, self._spastic = voluntary, spastic
        self._voluntary_sum += voluntary
        self._spastic_sum += spastic

        mujoco.mj_step(model, data)
        self.steps += 1
        self.time = self.steps * dt
        self._detect_contacts()

    def _detect_contacts(self) -> None:
        touch = self.data.sensordata[self.index.touch]
        now = self.time
        for side in (0, 1):
            force = touch[side]
            unloaded_for = now - self._loaded_at[side]
            if force > CONTACT_OFF_N:
                self._loaded_at[side] = now
            if self._contact[side]:
                if unloaded_for > CONTACT_RELEASE_S:
                    self._contact[side] = False
            elif force > CONTACT_ON_N:
                self._contact[side] = True
                if unloaded_for >= MIN_SWING_S:
                    self._heel_strikes[LEGS[side]].append(now)

    def _sample_imus(self) -> None:
        sensordata = self.data.sensordata
        accel, gyro = self._imu.sample(sensordata[self._accel_rows].reshape(-1, 3),
                                       sensordata[self._gyro_rows].reshape(-1, 3))
        stamp = self.options.time_origin + self.time
        self._imu_queue.extend(ImuSample(frame, stamp, accel[i], gyro[i]) for i, frame in enumerate(IMU_FRAMES))

    def _emg_batch(self) -> None:
        """Record what the EMG batch due now depends on (activation, movement artefact); its
        samples are generated when it is taken (emg()), the costly part, off the physics step."""
        steps = self.emg_period_steps
        voluntary = self._voluntary_sum / steps
        spastic = self._spastic_sum / steps
        self._voluntary_sum[:] = 0.0
        self._spastic_sum[:] = 0.0
        self._activation = self.patient.activation((self._phase, self._phase + 0.5), voluntary, spastic)
        accel = self.data.sensordata[self._accel_rows].reshape(-1, 3)
        artefact = np.abs(np.linalg.norm(accel, axis=1) - G)[self._artefact_imu]
        count = self.options.emg_batch_samples
        stamp = self.options.time_origin + self._emg_samples_due / self.emg_fs
        self._emg_samples_due += count
        self._emg_queue.append((stamp, self._activation, artefact))

    # --- devices ---------------------------------------------------------------------------

    def encoders(self) -> EncoderSample:
        """Joint encoders and drive torque sensing now."""
        data = self.data
        position = devices.quantise(data.qpos[self._jq], self.encoder_resolution)
        effort = data.actuator_force + self._encoder_rng.normal(0.0, self.options.effort_noise_nm, 6)
        return EncoderSample(self.options.time_origin + self.time, position, effort)

    def imus(self) -> list[ImuSample]:
        """IMU samples produced since the previous call (IMU_FRAMES order within a stamp)."""
        samples, self._imu_queue = self._imu_queue, []
        return samples

    def prepare_emg(self) -> None:
        """Draw the EMG noise the next batch needs ahead of time if it is not yet drawn (the
        costly part of a batch; a real-time caller calls this in spare time before emg())."""
        self._emg.prepare(self.options.emg_batch_samples)

    def emg(self) -> EmgBatch | None:
        """The oldest raw EMG batch due and not yet returned, or None (batches are generated in
        order, each from the state recorded when it was due)."""
        if not self._emg_queue:
            return None
        stamp, activation, artefact = self._emg_queue.popleft()
        samples = self._emg.generate(self.options.emg_batch_samples, activation, artefact)
        return EmgBatch(stamp, self.emg_fs, EMG_CHANNELS, samples)

    def truth(self) -> Truth:
        data, index = self.data, self.index
        return Truth(
            time=self.time,
            joint_position=data.qpos[self._jq].copy(),
            joint_velocity=data.qvel[self._jd].copy(),
            phase=np.array([self._phase, (self._phase + 0.5) % 1.0]),
            patient_torque=self._voluntary.copy(),
            spastic_torque=self._spastic.copy(),
            actuator_torque=data.actuator_force.copy(),
            activation=self._activation.copy(),
            contact=tuple(self._contact),
            heel_strikes={leg: tuple(times) for leg, times in self._heel_strikes.items()},
            pelvis_height=float(index.standing_pelvis_height + data.qpos[index.pelvis_qpos]),
            belt_speed=self.belt_speed,
            bws_percent=self.bws_percent,
        )

    def run(self, seconds: float, command_nm=None) -> None:
        """Step for `seconds` with a constant command (zero torque by default)."""
        command = self._zero if command_nm is None else command_nm
        for _ in range(int(round(seconds / self.dt))):
            self.step(command)


def _as_slice(addresses: np.ndarray):
    """A slice when the addresses are consecutive (faster indexing), else the array."""
    if len(addresses) and np.array_equal(addresses, np.arange(addresses[0], addresses[0] + len(addresses))):
        return slice(int(addresses[0]), int(addresses[-1]) + 1)
    return addresses
