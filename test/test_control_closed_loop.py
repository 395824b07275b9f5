"""Closed loop: the plain controller driving exo_sim.simulation.ExoSimulation directly (no DDS),
and (supervised_session) the safety supervisor in the loop as well.

Velocity comes from the encoder node's own filter (exo_sensors.encoder.EncoderProcessor) on the
quantised encoder positions, as on the real chain. With `emg=True` the simulator's raw EMG
batches go through the EMG node's chain (exo_sensors.emg.EmgProcessor, MVC-normalised) into
GaitController.set_emg, as /emg/envelope reaches it in gait_controller_node. Targets are those
of issue 5.
"""
import collections
import functools
import math
import random

import numpy as np
import pytest

from exo_common import normative
from exo_common.config import load_node_params
from exo_common.description import expand_xacro, joint_limits
from exo_common.joints import EMG_CHANNELS, JOINT_NAMES
from exo_common.params import resolve
from exo_control.controller import PARAMS, GaitController
from exo_control.dynamics import ExoDynamics
from exo_control.phase import wrap_half
from exo_safety.events import EventKind
from exo_safety.supervisor import ENABLED, PARAMETERS as SUPERVISOR_PARAMS, Supervisor

simulation = pytest.importorskip('exo_sim.simulation')
from exo_sensors.encoder import PARAMS as ENCODER_PARAMS, EncoderProcessor  # noqa: E402
from exo_sensors.emg import PARAMS as EMG_PARAMS, EmgProcessor, MvcCalibration  # noqa: E402
from exo_sim.devices import EmgSynth  # noqa: E402

# Body-weight support per population, % of the patient's weight. The issue fixes none; these are
# typical clinical settings of Lokomat-style training (typical values, not one study's figure):
# motor-complete SCI trains at high support, about 50-80 % at the start (60 % used); stroke
# patients at about 30-50 % (40 % used); healthy volunteers at the 30 % used by test_sim_core.
BWS_PERCENT = {'healthy': 30.0, 'stroke_left_hemiparesis': 40.0, 'complete_sci': 60.0}
SPEED_KMH = 2.0
SETTLE_S = 10.0
COMMAND_TIMEOUT_S = 0.05  # mujoco_sim command_timeout_s
TREADMILL_START_DELAY_S = 1.0  # mujoco_sim treadmill.start_delay_s


@functools.cache
def mvc_references() -> dict:
    """The emg_node's ~/calibrate_mvc on the simulator's amplifier: the peak envelope of each
    channel over mvc.calibration_duration of maximal contraction (activation 1 on every channel
    of the simulator's EMG model, the same signal chain as in a session), as mvc.<channel>."""
    params = resolve(EMG_PARAMS, {})
    options = simulation.SimOptions()
    synth = EmgSynth(len(EMG_CHANNELS), options.emg, np.random.default_rng(1))
    processor = EmgProcessor(params)
    calibration = MvcCalibration(int(params['mvc.calibration_duration'] * options.emg.fs_hz), len(EMG_CHANNELS))
    full, still = np.ones(len(EMG_CHANNELS)), np.zeros(len(EMG_CHANNELS))
    while not calibration.done:
        calibration.feed(processor.process(synth.generate(options.emg_batch_samples, full, still)))
    return {f'mvc.{channel}': float(peak) for channel, peak in zip(EMG_CHANNELS, calibration.peaks)}


def feed_emg(sim, processor, controller) -> None:
    """The simulator's finished raw EMG batches through the EMG node's chain into the controller,
    as /emg/envelope reaches it (stamped with each batch's last sample)."""
    while (batch := sim.emg()) is not None:
        processor.process(batch.samples)
        controller.set_emg(batch.stamp + (len(batch.samples) - 1) / batch.fs, EMG_CHANNELS,
                           processor.activation.tolist())


def session(patient, seconds, seed=0, emg=False, enable_at=None, record_from=SETTLE_S, **overrides):
    """Run a session; returns per-step arrays from record_from on and the controller.

    Args:
        emg: feed the simulator's EMG through EmgProcessor into the controller.
        enable_at: start as a session of the stack does: the patient stands, the controller is
            enabled at this time and the belt and the patient start walking 1 s later
            (mujoco_sim's treadmill.start_delay_s). None: walking and enabled from the start.
    """
    sim = simulation.ExoSimulation(patient, speed_kmh=SPEED_KMH, bws_percent=BWS_PERCENT[patient], seed=seed)
    emg_processor = EmgProcessor(resolve(EMG_PARAMS, mvc_references())) if emg else None
    limits = joint_limits()
    controller = GaitController(resolve(PARAMS, overrides), ExoDynamics(expand_xacro(wearer=False)), limits)
    if enable_at is None:
        controller.set_enabled(True)
    else:
        sim.set_walking(False)
    encoders = EncoderProcessor(limits, resolve(ENCODER_PARAMS, {}))
    names = list(JOINT_NAMES)
    rows = []
    request = [0.0] * 6
    last_request = 0.0
    for k in range(int(seconds / sim.dt)):
        if enable_at is not None and sim.time >= enable_at:
            controller.set_enabled(True)
            if sim.time >= enable_at + TREADMILL_START_DELAY_S and not sim.walking:
                sim.set_walking(True)
        sample = sim.encoders()
        # A sample the encoder node refuses is not published: the controller gets nothing and
        # the drives keep the last request until mujoco_sim's command timeout zeroes it.
        if not encoders.update(sample.stamp, 0.0, names, sample.position.tolist(), []):
            request = controller.step(sample.stamp, encoders.position, encoders.velocity)
            last_request = sample.stamp
        elif sample.stamp - last_request > COMMAND_TIMEOUT_S:
            request = [0.0] * 6
        if k % 100 == 0:
            controller.set_treadmill_speed(sim.belt_speed, sample.stamp)
        sim.step(request)
        if emg_processor is not None:
            feed_emg(sim, emg_processor, controller)
        if sim.time >= record_from:
            truth = sim.truth()
            rows.append((*truth.joint_velocity, *truth.joint_position, *controller.reference_position, *truth.phase,
                         *controller.phases, *truth.actuator_torque, *controller.assistance))
    log = np.array(rows)
    log, qd = log[:, 6:], log[:, :6]
    return {'q': log[:, 0:6], 'qd': qd, 'ref': log[:, 6:12], 'true_phase': log[:, 12:14], 'phase': log[:, 14:16],
            'torque': log[:, 16:22], 'assistance': log[:, 22:28], 'sim': sim, 'controller': controller}


def rms_deg(a, b):
    return np.degrees(np.sqrt(np.mean((a - b) ** 2, axis=0)))


def test_complete_sci_full_guidance_tracks_the_reference():
    run = session('complete_sci', SETTLE_S + 36.0, mode='guidance')
    error = rms_deg(run['q'], run['ref'])
    strides = min(len(v) for v in run['sim'].truth().heel_strikes.values())
    print('complete SCI RMS error deg', error.round(2), 'strides', strides)
    assert strides >= 20
    assert max(error[[0, 1, 3, 4]]) <= 2.0
    assert max(error[[2, 5]]) <= 3.0


@pytest.mark.parametrize('patient', ['healthy', 'stroke_left_hemiparesis'])
def test_cooperative_phase_follows_the_patient(patient):
    run = session(patient, SETTLE_S + 30.0, mode='cooperative')
    error = np.vectorize(wrap_half)(run['phase'] - run['true_phase'])
    rms = np.sqrt(np.mean(error ** 2, axis=0))
    print(patient, 'phase RMS error (left, right)', rms.round(4))
    assert max(rms) <= 0.03


def test_standing_start_of_a_stack_session_walks_in_step_within_the_velocity_limits():
    """The main job's scenario: stroke patient standing, cooperative mode with assist-as-needed
    and EMG; enable, the belt starts 1 s later. Exo and patient must fall into one rhythm (no
    lasting fight at the torque limits) and no joint may exceed its URDF velocity limit for
    longer than the safety supervisor's velocity.persistence."""
    enable_at = 1.0
    run = session('stroke_left_hemiparesis', 40.0, emg=True, enable_at=enable_at, record_from=enable_at,
                  mode='cooperative', **{'aan.enabled': True})
    # Standing, enabled, the belt still: the exo holds the posture the patient stands in (it
    # once walked its reference on at the slowest cadence and pushed the standing legs at the
    # torque limits), and once the belt runs it is in step from the first stride (it once
    # trailed the patient by up to 0.4 cycles for 5 s, fighting at the torque limits).
    standing = slice(0, int(TREADMILL_START_DELAY_S / run['sim'].dt))
    print('largest torque while standing, N m', np.abs(run['torque'][standing]).max(axis=0).round(1))
    assert np.abs(run['torque'][standing]).max() < 20.0
    first_strides = slice(standing.stop, standing.stop + 5000)
    start_error = np.vectorize(wrap_half)(run['phase'][first_strides] - run['true_phase'][first_strides])
    print('phase RMS error over the first 5 s of walking', np.sqrt(np.mean(start_error ** 2)).round(4))
    assert np.sqrt(np.mean(start_error ** 2)) < 0.03
    limits = joint_limits()
    velocity_limit = np.array([limits[name].velocity for name in JOINT_NAMES])
    effort_limit = np.array([limits[name].effort for name in JOINT_NAMES])
    over = np.abs(run['qd']) > velocity_limit
    longest = np.zeros(6, int)
    current = np.zeros(6, int)
    for row in over:
        current = np.where(row, current + 1, 0)
        longest = np.maximum(longest, current)
    persistence_steps = 10  # safety_supervisor velocity.persistence 0.01 s at 1 ms
    assert (longest < persistence_steps).all(), f'ms above the velocity limit per joint: {longest}'
    saturated = (np.abs(run['torque']) > 0.99 * effort_limit).mean(axis=0)
    print('share of time at the torque limit', saturated.round(3))
    assert saturated.max() < 0.3
    last = slice(-10000, None)  # the last 10 s: controller and patient in one rhythm
    error = np.vectorize(wrap_half)(run['phase'][last] - run['true_phase'][last])
    assert np.sqrt(np.mean(error ** 2)) < 0.05
    strides = np.sum(np.diff(run['true_phase'][:, 0]) < -0.5)
    assert strides >= 15


def test_transparent_mode_carries_the_exo_weight():
    run = session('healthy', SETTLE_S + 20.0, mode='transparent')
    dynamics = run['controller'].dynamics
    gravity = np.array([dynamics.gravity(list(q)) for q in run['q']])
    # What reaches the limbs: the actuator torque less what the drive's own friction takes.
    friction = np.array([dynamics.friction(list(qd)) for qd in run['qd']])
    error = np.sqrt(np.mean((run['torque'] - friction - gravity) ** 2, axis=0))
    print('transparent: net exo torque - exo gravity RMS Nm', error.round(2))
    assert max(error) <= 0.5
    # The patient's stride-averaged curves (by its own phase) inside the normative mean +- 2 SD
    # (95 % of healthy walkers) of the bare upright-pelvis pattern: hip relative to the vertical,
    # knee and ankle as measured, without the device's clearance and heel-strike adjustments.
    bins = 50
    mean, sd = normative.device_curves(SPEED_KMH / 3.6, phase=(np.arange(bins) + 0.5) / bins,
                                       clearance=normative.NO_CLEARANCE, alignment=normative.NO_ALIGNMENT)
    for leg in range(2):
        which = (run['true_phase'][:, leg] * bins).astype(int) % bins
        legs = run['q'][:, 3 * leg:3 * leg + 3]
        curve = np.array([legs[which == b].mean(axis=0) for b in range(bins)]).T
        z = np.abs(curve - mean) / sd
        print('transparent: largest distance from the normative mean in SD (hip, knee, ankle)', z.max(axis=1).round(2))
        assert z.max() <= 2.0


@pytest.mark.slow
@pytest.mark.parametrize('patient', ['healthy', 'complete_sci', 'stroke_left_hemiparesis'])
def test_assist_as_needed_three_minute_session(patient):
    run = session(patient, 180.0, mode='cooperative', emg=True, **{'aan.enabled': True})
    final = np.array(run['controller'].aan.joint_means())
    print(patient, 'final assistance per joint %', (100 * final).round(1))
    if patient == 'healthy':
        assert final.mean() < 0.30
        tunnel = math.radians(run['controller'].params['path.tunnel_width_deg'])
        assert max(np.radians(rms_deg(run['q'][-20000:], run['ref'][-20000:]))) <= tunnel
    elif patient == 'complete_sci':
        assert final.mean() >= 0.90
    else:
        assert final[:3].mean() > final[3:].mean()


# Control outages as a host that stops the machine makes them (measured on this one: up to 50 ms
# about once a second, and a few ms several times a second): the world goes on, the drives hold
# the last command for DRIVE_HOLD_S and then give zero torque (their command watchdog).
LONG_OUTAGE_S = 0.045
SHORT_OUTAGE_S = (0.002, 0.010)
OUTAGE_INTERVAL_S = (0.1, 0.3)
DRIVE_HOLD_S = 0.005


def supervised_session(seconds, outages_from=math.inf, seed=0, command_delay_steps=0, supervisor_overrides=None):
    """The main job's session in plain modules: the stroke patient stands, the supervisor and
    the controller (shipped configuration, cooperative mode, assist-as-needed, EMG) are enabled
    at once and the belt starts TREADMILL_START_DELAY_S later; the supervisor shapes every
    command. From outages_from on, nothing in the loop runs during seeded control outages; every
    command reaches the drives command_delay_steps physics steps after its sample.
    Returns the supervisor and the number of outages."""
    limits = joint_limits()
    sim = simulation.ExoSimulation('stroke_left_hemiparesis', speed_kmh=SPEED_KMH,
                                   bws_percent=BWS_PERCENT['stroke_left_hemiparesis'], seed=1)
    sim.set_walking(False)
    encoders = EncoderProcessor(limits, load_node_params('encoder_node', ENCODER_PARAMS))
    emg = EmgProcessor(load_node_params('emg_node', EMG_PARAMS, overrides=mvc_references()))
    controller = GaitController(
        load_node_params('gait_controller', PARAMS, overrides={'mode': 'cooperative', 'aan.enabled': True}),
        ExoDynamics(expand_xacro(wearer=False)), limits)
    supervisor = Supervisor([limits[name] for name in JOINT_NAMES],
                            load_node_params('safety_supervisor', SUPERVISOR_PARAMS, overrides=supervisor_overrides))
    names = list(JOINT_NAMES)
    rng = random.Random(seed)
    command, commanded_at = [0.0] * 6, 0.0
    in_flight = collections.deque()  # (step it reaches the drives, command)
    outage_until, next_outage, next_long, outages = -1.0, outages_from, outages_from, 0
    for k in range(int(seconds / sim.dt)):
        now = sim.time
        while in_flight and in_flight[0][0] <= k:
            command, commanded_at = in_flight.popleft()[1], now
        if now >= next_outage:
            length = LONG_OUTAGE_S if now >= next_long else rng.uniform(*SHORT_OUTAGE_S)
            next_long = next_long + 1.0 if now >= next_long else next_long
            outage_until, next_outage = now + length, now + length + rng.uniform(*OUTAGE_INTERVAL_S)
            outages += 1
        if now < outage_until:
            sim.step(command if now - commanded_at <= DRIVE_HOLD_S else [0.0] * 6)
            continue
        sample = sim.encoders()
        encoders.update(sample.stamp, 0.0, names, sample.position.tolist(), sample.effort.tolist())
        supervisor.on_joint_states(sample.stamp, names, encoders.position, encoders.velocity, [], now, now)
        if k % sim.imu_period_steps == 0:  # the pelvis of this model stays upright
            supervisor.on_pelvis_imu(sample.stamp, (0.0, 0.0, 0.0, 1.0), True, (0.0, 0.0, 0.0),
                                     (0.0, 0.0, 9.81), now, now)
        if k == 1:
            assert supervisor.enable(True, now, now)[0]
            controller.set_enabled(True)
        if not sim.walking and now >= TREADMILL_START_DELAY_S:
            sim.set_walking(True)
        if k % 100 == 0:  # /hw/treadmill/speed, 10 Hz
            controller.set_treadmill_speed(sim.belt_speed, sample.stamp)
        request = controller.step(sample.stamp, encoders.position, encoders.velocity)
        shaped = supervisor.on_request(sample.stamp, names, request, controller.reference_position,
                                       controller.reference_velocity, now, now)
        if shaped is not None:
            if command_delay_steps:
                in_flight.append((k + command_delay_steps, shaped))
            else:
                command, commanded_at = shaped, now
        sim.step(command)
        feed_emg(sim, emg, controller)
        if k > 1 and supervisor.state != ENABLED:
            break
    return supervisor, outages


@pytest.mark.parametrize('seed', [3, 4, 9])
def test_control_outages_in_the_first_strides_end_in_no_fault(seed):
    """The first strides are where the loop is most exposed: patient and exo are just falling
    into one rhythm. Before the controller held its phase while the belt stood and took the belt's
    cadence at once, it trailed the patient there at the torque limits, and these seeds' outages
    drove the left knee past its velocity limit (VELOCITY_LIMIT, 3 of seeds 1-12 with the former
    5,000 N m/s rate limit, seed 3 still with the shipped one; as in whole-stack sessions on a
    machine whose host stalled it). None of the 12 faults with this controller."""
    supervisor, outages = supervised_session(15.0, outages_from=TREADMILL_START_DELAY_S + 0.5, seed=seed)
    faults = [f'{event.code}: {event.message}' for event in supervisor.drain_events() if event.kind == EventKind.FAULT]
    assert faults == []
    assert supervisor.state == ENABLED and outages > 50


@pytest.mark.parametrize('rate_limit, delay_ms, faults_expected', [(None, 5, False), (5000.0, 4, True)])
def test_the_supervised_loop_keeps_a_margin_for_late_commands(rate_limit, delay_ms, faults_expected):
    """Commands that reach the drives late (a stalled machine, a slow bus) take the stiff
    full-assistance loop toward instability; the supervisor's torque rate limit adds lag of its
    own. Measured here (15 s, no outages): with the former 5,000 N m/s the loop rang into a
    VELOCITY_LIMIT fault once commands came 4 ms late (3 ms passed); with 10,000 at 5 ms; with the
    shipped limit (and with 100,000) it holds 5 ms; at 6 ms it failed once even so, these gains'
    own margin. (The physics step is 1 ms: delay_ms is also the delay in steps.)"""
    overrides = None if rate_limit is None else {'effort.rate_limit': rate_limit}
    supervisor, _ = supervised_session(15.0, command_delay_steps=delay_ms, supervisor_overrides=overrides)
    faults = [event.code for event in supervisor.drain_events() if event.kind == EventKind.FAULT]
    assert (faults != []) == faults_expected, faults
