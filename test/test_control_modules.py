"""Plain modules of exo_control against known signals: reference, phase, assistance, dynamics, law."""
import math

import numpy as np
import pytest

from exo_common import normative
from exo_common.description import expand_xacro, joint_limits
from exo_common.diagnostics import Level
from exo_common.joints import EMG_CHANNELS
from exo_common.params import resolve
from exo_control.assistance import AssistAsNeeded, EmgYield
from exo_control.controller import KMH, PARAMS, GaitController, check_params
from exo_control.dynamics import ExoDynamics
from exo_control import phase as phase_module
from exo_control.phase import HipCrossingPhase, TimePhase, wrap_half
from exo_control.reference import TABLE_SIZE, GaitReference

DT = 0.001


@pytest.fixture(scope='module')
def dynamics():
    return ExoDynamics(expand_xacro(wearer=False))


@pytest.fixture(scope='module')
def limits():
    return joint_limits()


def make_controller(dynamics, limits, **overrides):
    controller = GaitController(resolve(PARAMS, overrides), dynamics, limits)
    controller.set_enabled(True)
    return controller


def leg_angles(reference, phase):
    pos, slope = [0.0] * 3, [0.0] * 3
    reference.sample_leg(phase, pos, slope)
    return pos, slope


# ---------------------------------------------------------------- reference

def test_reference_matches_the_shared_device_pattern_at_speed():
    speed = 2.0 * KMH
    reference = GaitReference(speed)
    mean, _ = normative.device_curves(speed)
    for phase in normative.phase_grid()[:-1:5]:  # the spline passes through the data points
        pos, _ = leg_angles(reference, phase)
        np.testing.assert_allclose(pos, normative.sample(mean, phase), atol=2e-3)
    assert reference.stride_rate == pytest.approx(1.0 / normative.stride_time_s(speed))


def test_step_length_scales_hip_excursion_and_step_height_scales_swing_knee_only():
    base = GaitReference(0.55)
    scaled = GaitReference(0.55, step_length_scale=1.3, step_height_scale=1.5)
    hip = np.array([leg_angles(base, p)[0][0] for p in np.arange(100) / 100])
    hip_scaled = np.array([leg_angles(scaled, p)[0][0] for p in np.arange(100) / 100])
    assert np.ptp(hip_scaled) == pytest.approx(1.3 * np.ptp(hip), rel=0.01)
    stance = 0.3
    assert leg_angles(scaled, stance)[0][1] == pytest.approx(leg_angles(base, stance)[0][1])
    swing = 0.75
    assert leg_angles(scaled, swing)[0][1] > 1.3 * leg_angles(base, swing)[0][1]


def test_parameter_change_blends_in_without_a_step():
    reference = GaitReference(0.55, blend_time_s=1.0)
    phase, previous, largest = 0.3, None, 0.0
    reference.set_target(speed_mps=1.0, step_length_scale=1.4, step_height_scale=1.6)
    for _ in range(3000):
        reference.advance(DT)
        phase += reference.stride_rate * DT
        pos, _ = leg_angles(reference, phase)
        if previous is not None:
            largest = max(largest, max(abs(a - b) for a, b in zip(pos, previous)))
        previous = pos
        if _ == 500:
            reference.set_target(step_length_scale=0.8)  # a change in the middle of a fade
    # No jump: never much faster than the fastest pattern's own slope (rad per ms).
    fastest = GaitReference(1.0, 1.4, 1.6)
    slope = max(abs(v) for row in fastest._new.slope_rows for v in row) * fastest.stride_rate * DT
    assert largest < 1.2 * slope, (largest, slope)
    # ... while switching the same change without a blend would step by far more.
    unblended = max(abs(a - b) for k in range(100)
                    for a, b in zip(leg_angles(GaitReference(0.55), k / 100)[0], leg_angles(fastest, k / 100)[0]))
    assert unblended > 10 * slope, (unblended, slope)
    assert not reference.blending
    assert reference.stride_rate == pytest.approx(1.0 / normative.stride_time_s(1.0))


def test_reference_stays_within_joint_limits(limits):
    lower = [limits[f'left_{j}_joint'].lower for j in ('hip', 'knee', 'ankle')]
    upper = [limits[f'left_{j}_joint'].upper for j in ('hip', 'knee', 'ankle')]
    reference = GaitReference(1.3, step_length_scale=1.5, step_height_scale=2.0, lower=lower, upper=upper)
    for phase in np.arange(TABLE_SIZE) / TABLE_SIZE:
        pos, _ = leg_angles(reference, phase)
        assert all(lo - 1e-9 <= p <= hi + 1e-9 for lo, p, hi in zip(lower, pos, upper))


def test_best_phase_recovers_the_phase_of_a_reference_posture():
    reference = GaitReference(0.55)
    for phase in (0.1, 0.42, 0.8):
        left, _ = leg_angles(reference, phase)
        right, _ = leg_angles(reference, phase - 0.5)
        assert abs(wrap_half(reference.best_phase(left + right) - phase)) <= 0.02


# ---------------------------------------------------------------- phase

def test_time_phase_advances_at_rate_and_wraps():
    phase = TimePhase(0.9)
    for _ in range(200):
        phase.advance(1.0, 0.001)
    assert phase.phase == pytest.approx(0.1)


@pytest.mark.parametrize('rate_factor', [0.8, 1.0, 1.25])
def test_hip_crossing_phase_locks_onto_a_walker_at_another_cadence(rate_factor):
    reference = GaitReference(0.55)
    hip = reference.hip_curve()
    true_rate = reference.stride_rate * rate_factor
    estimator = HipCrossingPhase(hip, reference.stride_rate, 0.3)
    rng = np.random.default_rng(1)
    errors = []
    for k in range(40000):
        true_phase = (k * DT * true_rate + 0.37) % 1.0
        angle = np.interp(true_phase, np.linspace(0, 1, len(hip)), hip) + rng.normal(0, 0.002)
        estimate = estimator.update(round(angle / 4e-4) * 4e-4, 0.0, DT)
        if k > 20000:
            errors.append(wrap_half(estimate - true_phase))
    assert estimator.rate == pytest.approx(true_rate, rel=0.02)
    assert math.sqrt(np.mean(np.square(errors))) < 0.01


def test_hip_crossing_rate_follows_the_belt_at_once_and_ignores_implausible_cadences():
    reference = GaitReference(0.55)
    hip = reference.hip_curve()
    estimator = HipCrossingPhase(hip, 0.03, 0.3)   # enabled with the belt standing
    estimator.set_nominal_rate(reference.stride_rate)  # the belt runs up: no crossing needed
    assert estimator.rate == pytest.approx(reference.stride_rate)
    # a hip fighting the exo crosses its centre twice per half stride: twice the cadence
    true_rate = 2.0 * reference.stride_rate
    grid = np.linspace(0, 1, len(hip))
    for k in range(20000):
        estimator.update(np.interp((k * DT * true_rate) % 1.0, grid, hip), 0.0, DT)
    low, high = phase_module.RATE_BAND
    assert low * reference.stride_rate <= estimator.rate <= high * reference.stride_rate


def test_hip_crossing_output_never_races_to_catch_up():
    reference = GaitReference(0.55)
    hip = reference.hip_curve()
    rate = reference.stride_rate
    estimator = HipCrossingPhase(hip, rate, 5.0)   # a stiff loop
    estimator.reset(0.5, rate)                     # half a cycle off the walker below
    grid = np.linspace(0, 1, len(hip))
    previous, fastest = estimator.phase, 0.0
    for k in range(10000):
        phase = estimator.update(np.interp((k * DT * rate) % 1.0, grid, hip), 0.0, DT)
        fastest = max(fastest, ((phase - previous) % 1.0) / DT)
        previous = phase
    assert fastest <= (1.0 + phase_module.MAX_PULL) * estimator.rate * 1.001


# ---------------------------------------------------------------- assistance

def run_strides(aan, errors_per_bin, strides, active=None):
    """Observe strides of per-bin errors; active: per-bin EMG activity (None = no EMG)."""
    for _ in range(strides):
        for b in range(aan.bins):
            for k in range(5):
                aan.observe(0, (b + k / 5) / aan.bins, errors_per_bin[b], None if active is None else active[b])
    aan.observe(0, 0.0, 0.0)  # leave the last bin


def test_aan_fades_where_tracking_is_good_and_grows_where_not():
    aan = AssistAsNeeded(bins=10, gain=5.0, forgetting=0.9, deadband=0.02, bounds=[0.8])
    errors = [0.01] * 5 + [0.2] * 5
    run_strides(aan, errors, 60)
    assert max(aan.levels[0][:5]) < 0.01
    assert min(aan.levels[0][5:]) == pytest.approx(0.8)  # capped at the therapist's bound
    aan.set_bounds([0.5])
    assert max(aan.levels[0]) == pytest.approx(0.5)


def test_aan_equilibrium_follows_emken_update():
    gain, forgetting, deadband, error = 2.0, 0.9, 0.01, 0.03
    aan = AssistAsNeeded(bins=4, gain=gain, forgetting=forgetting, deadband=deadband, bounds=[1.0])
    run_strides(aan, [error] * 4, 200)
    expected = gain * (error - deadband) / (1.0 - forgetting)
    assert aan.levels[0] == pytest.approx([expected] * 4, rel=1e-3)


def test_emg_gated_forgetting_keeps_help_where_the_patient_shows_no_activity():
    gain, forgetting, deadband = 2.0, 0.9, 0.01
    aan = AssistAsNeeded(bins=4, gain=gain, forgetting=forgetting, deadband=deadband, bounds=[0.8], emg_gated=True)
    aan.reset(to_bound=False)
    aan.levels[0] = [0.6, 0.6, 0.0, 0.6]
    # bin 0 active (forgets), bin 1 silent (kept), bin 2 silent with error (grows), bin 3 no EMG
    run_strides(aan, [0.0, 0.0, 0.03, 0.0], 1, active=[True, False, False, None])
    assert aan.levels[0] == pytest.approx([0.6 * forgetting, 0.6, gain * 0.02, 0.6 * forgetting])
    run_strides(aan, [0.0, 0.0, 0.03, 0.0], 200, active=[True, False, False, None])
    assert aan.levels[0][1] == pytest.approx(0.6) and aan.levels[0][2] == pytest.approx(0.8)
    assert max(aan.levels[0][0], aan.levels[0][3]) < 0.01


def test_emg_gated_forgetting_follows_the_share_of_active_samples():
    for gated, expected in ((True, 1.0 - 0.2 * 2 / 5), (False, 0.8)):
        aan = AssistAsNeeded(bins=2, gain=0.0, forgetting=0.8, deadband=0.0, bounds=[1.0], emg_gated=gated)
        for k, active in enumerate([True, False, False, False, None]):  # 2 of 5 samples may forget
            aan.observe(0, k / 10, 0.0, active)
        aan.observe(0, 0.6, 0.0)  # leaving bin 0 updates it
        assert aan.levels[0] == pytest.approx([expected, 1.0])


def emg_walk(controller, seconds, activation, emg_until=math.inf, start=1.0):
    """Hold the reference posture of each step (no error) while EMG of `activation` on every
    channel arrives every 10 ms until `emg_until`."""
    stamp = start
    for k in range(int(seconds / DT)):
        if k % 10 == 0 and stamp < emg_until:
            assert controller.set_emg(stamp, EMG_CHANNELS, [activation] * 8) is None
        controller.step(stamp, list(controller.reference_position), [0.0] * 6)
        stamp += DT
    return stamp


@pytest.mark.parametrize('activation, emg_until, expect_kept', [
    (0.0, math.inf, True),     # EMG silent: forgetting suspended
    (0.3, math.inf, False),    # active in every window that has a muscle: help fades
    (0.0, 0.5, False),         # EMG stops (stale): plain Emken, help fades
])
def test_controller_gates_forgetting_by_fresh_emg(dynamics, limits, activation, emg_until, expect_kept):
    controller = make_controller(dynamics, limits, mode='guidance', **{
        'aan.enabled': True, 'aan.forgetting': 0.5, 'aan.deadband_deg': 20.0, 'emg.max_yield': 0.0})
    emg_walk(controller, 25.0, activation, emg_until)
    # the ankle's muscles cover the whole cycle; knee and hip leave gaps without a muscle
    ankle = controller.aan.levels[2]
    if expect_kept:
        assert min(ankle) == pytest.approx(1.0)
    else:
        assert max(ankle) < 0.05


def test_emg_yields_only_in_the_muscles_window():
    emg = EmgYield(threshold=0.1, full=0.4, max_yield=0.5, window_margin=0.0)
    activations = [0.0] * 8
    activations[3] = 0.4  # left gastrocnemius: on in 9-54 % of the cycle
    in_window = emg.factors(activations, (0.3, 0.8))
    assert in_window[2] == pytest.approx(0.5) and in_window[1] == pytest.approx(0.5)  # ankle, knee
    assert in_window[0] == 1.0 and in_window[3:] == [1.0, 1.0, 1.0]
    assert emg.factors(activations, (0.8, 0.3)) == [1.0] * 6


# ---------------------------------------------------------------- dynamics and law

def test_gravity_of_exo_links_matches_a_hand_check(dynamics):
    down = dynamics.gravity([0.0] * 6)
    flexed = dynamics.gravity([math.pi / 2, 0.0, 0.0, 0.0, 0.0, 0.0])
    # leg exo links held horizontal: hip torque ~ m g x; the sum of leg exo masses is 6 kg.
    assert 6.0 * 9.81 * 0.2 < flexed[0] < 6.0 * 9.81 * 0.6
    assert abs(down[0]) < 0.1 * flexed[0]
    assert flexed[3:] == pytest.approx(down[3:])


def test_friction_compensation_uses_urdf_coefficients(dynamics):
    tau = dynamics.friction([1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    assert tau[0] == pytest.approx(dynamics.damping[0] + dynamics.coulomb[0], rel=1e-3)
    assert tau[1] == pytest.approx(-(dynamics.damping[1] + dynamics.coulomb[1]), rel=1e-3)
    assert tau[2] == 0.0


def settle(controller, q, seconds=3.0, start=1.0):
    stamp = start
    for _ in range(int(seconds / DT)):
        request = controller.step(stamp, q, [0.0] * 6)
        stamp += DT
    return request, stamp


def test_transparent_mode_requests_gravity_only(dynamics, limits):
    q = [0.4, 0.3, 0.1, -0.1, 0.2, 0.0]
    controller = make_controller(dynamics, limits, mode='transparent')
    request, _ = settle(controller, q)
    assert request == pytest.approx(dynamics.gravity(q), abs=1e-9)


def test_zero_assistance_is_transparent_and_full_assistance_pulls_to_reference(dynamics, limits):
    q = [0.4, 0.3, 0.1, -0.1, 0.2, 0.0]
    zero = make_controller(dynamics, limits, mode='guidance', **{'assistance.left_percent': 0.0,
                                                               'assistance.right_percent': 0.0})
    request, _ = settle(zero, q)
    assert request == pytest.approx(dynamics.gravity(q), abs=1e-9)
    full = make_controller(dynamics, limits, mode='guidance', **{'assistance.right_percent': 50.0})
    request, _ = settle(full, q)
    gravity = dynamics.gravity(q)
    for j in range(6):
        error = full.reference_position[j] - q[j]
        stiffness = full.params[f'stiffness.{("hip", "knee", "ankle")[j % 3]}'] * (1.0 if j < 3 else 0.5)
        expected = gravity[j] + stiffness * error + (1.0 if j < 3 else 0.5) * full._damping[j] * full.reference_velocity[j]
        effort = limits[list(limits)[j]].effort
        assert request[j] == pytest.approx(max(-effort, min(effort, expected)), rel=1e-6, abs=1e-6)


def test_path_mode_gives_no_corrective_torque_inside_the_tunnel(dynamics, limits):
    controller = make_controller(dynamics, limits, mode='path', **{'path.tunnel_width_deg': 10.0})
    _, stamp = settle(controller, [0.3, 0.2, 0.0, 0.2, 0.3, 0.0])
    near = list(controller.reference_position)
    near[0] += math.radians(5.0)
    request = controller.step(stamp, near, [0.0] * 6)
    assert request[0] == pytest.approx(dynamics.gravity(near)[0], abs=1e-6)
    far = list(controller.reference_position)
    far[0] -= math.radians(15.0)
    request = controller.step(stamp + DT, far, [0.0] * 6)
    outside = controller.reference_position[0] - far[0] - math.radians(10.0)
    assert request[0] - dynamics.gravity(far)[0] > 0.5 * controller._stiffness[0] * outside


def test_torque_ramps_in_from_zero_and_reference_starts_at_posture(dynamics, limits):
    posture = [0.6, 0.9, 0.2, -0.2, 0.1, -0.3]  # far from any gait posture
    transparent = make_controller(dynamics, limits, mode='transparent')
    requests = [transparent.step(1.0 + k * DT, posture, [0.0] * 6) for k in range(1500)]
    gravity = dynamics.gravity(posture)
    ramp_steps = transparent.params['safety.torque_ramp_s'] / DT
    assert requests[0] == [0.0] * 6
    for before, after in zip(requests, requests[1:]):
        assert all(abs(b - a) <= abs(g) / ramp_steps + 1e-9 for a, b, g in zip(before, after, gravity))
    assert requests[-1] == pytest.approx(gravity)

    guidance = make_controller(dynamics, limits, mode='guidance')
    assert guidance.step(1.0, posture, [0.0] * 6) == [0.0] * 6
    assert guidance.reference_position == pytest.approx(posture)
    for k in range(1, 21):
        request = guidance.step(1.0 + k * DT, posture, [0.0] * 6)
    assert max(abs(r) for r in request) < 0.05 * 120.0


def test_not_enabled_gives_zero_and_resynchronises_on_enable(dynamics, limits):
    controller = make_controller(dynamics, limits)
    _, stamp = settle(controller, [0.3, 0.2, 0.0, 0.2, 0.3, 0.0])
    controller.set_enabled(False)
    moved = [0.1, 0.5, -0.1, 0.4, 0.1, 0.1]
    assert controller.step(stamp, moved, [0.0] * 6) == [0.0] * 6
    controller.set_enabled(True)
    request = controller.step(stamp + DT, moved, [0.0] * 6)
    assert request == [0.0] * 6  # the ramp scales the whole law, damping included
    assert controller.reference_position == pytest.approx(moved, abs=1e-6)


@pytest.mark.parametrize('q, qd, stamp, now, text', [
    ([0.1] * 5, [0.0] * 6, 2.0, 0.0, 'expected 6'),
    ([0.1, math.nan, 0.1, 0.1, 0.1, 0.1], [0.0] * 6, 2.0, 0.0, 'left_knee_joint: position is nan'),
    ([0.1] * 6, [0.0, 0.0, math.inf, 0.0, 0.0, 0.0], 2.0, 0.0, 'left_ankle_joint: velocity is inf'),
    ([0.1, 0.1, 0.1, 0.1, 5.0, 0.1], [0.0] * 6, 2.0, 0.0, 'right_knee_joint: position 5.000'),
    ([0.1] * 6, [0.0] * 6, 3.0, 4.0, 'stale'),
    ([0.1] * 6, [0.0] * 6, 3.0, 2.5, 'future'),
    ([0.1] * 6, [0.0] * 6, 0.5, 0.0, 'out-of-order'),
])
def test_bad_samples_give_zero_request_and_a_problem(dynamics, limits, q, qd, stamp, now, text):
    controller = make_controller(dynamics, limits)
    settle(controller, [0.1] * 6, seconds=1.5, start=0.9)
    controller.take_pending()
    assert controller.step(stamp, q, qd, now) == [0.0] * 6
    (key, level, message, _), = controller.take_pending()
    assert level == Level.ERROR and text in message
    assert controller.ramp == 0.0


def test_treadmill_speed_moves_the_reference_and_times_out(dynamics, limits):
    controller = make_controller(dynamics, limits, **{'reference.speed_kmh': 2.0})
    assert controller.set_treadmill_speed(1.0, 1.0) is None
    assert controller.reference.settings[0] == pytest.approx(1.0)
    assert 'plausible' in controller.set_treadmill_speed(math.nan, 1.0)
    assert controller.check_treadmill(5.0)
    assert controller.reference.settings[0] == pytest.approx(2.0 * KMH)


@pytest.mark.parametrize('mode', ['guidance', 'cooperative'])
def test_a_standing_belt_holds_phase_and_posture_until_it_runs(dynamics, limits, mode):
    posture = [0.3, 0.1, 0.0, -0.15, 0.15, 0.25]
    controller = make_controller(dynamics, limits, mode=mode)
    controller.set_treadmill_speed(0.0, 1.0)
    assert controller.cadence() == 0.0
    request, stamp = settle(controller, posture, seconds=3.0)  # past ramp-in and re-sync time
    phases = list(controller.phases)
    assert controller.reference_position == pytest.approx(posture, abs=1e-9)
    assert controller.reference_velocity == [0.0] * 6
    assert request == pytest.approx(dynamics.gravity(posture), abs=1e-6)
    # the belt starts: the phase runs at its cadence, the reference leaves the posture smoothly
    speed = 0.3
    controller.set_treadmill_speed(speed, stamp)
    previous = list(controller.reference_position)
    for _ in range(200):
        controller.step(stamp, posture, [0.0] * 6)
        assert max(abs(a - b) for a, b in zip(controller.reference_position, previous)) < 0.002
        previous = list(controller.reference_position)
        stamp += DT
    cadence = 1.0 / normative.stride_time_s(speed)
    assert wrap_half(controller.phases[0] - phases[0]) == pytest.approx(200 * DT * cadence, rel=0.3)


def test_the_phase_runs_at_the_cadence_of_the_belt_speed_at_once(dynamics, limits):
    """A belt running up, as /hw/treadmill/speed reports it (10 Hz): the phase advances at the
    cadence of each new speed from the next sample on, not after the reference's cross-fade
    (blend_time_s, meant for a therapist's changes, would have it trail the belt)."""
    controller = make_controller(dynamics, limits, mode='guidance', **{'reference.blend_time_s': 5.0})
    stamp = 1.0
    controller.step(stamp, [0.1] * 6, [0.0] * 6)
    for speed in (0.1, 0.2, 0.3, 0.4):
        controller.set_treadmill_speed(speed, stamp)
        start = controller.phases[0]
        for _ in range(100):
            stamp += DT
            controller.step(stamp, [0.1] * 6, [0.0] * 6)
        cadence = 1.0 / normative.stride_time_s(speed)
        assert wrap_half(controller.phases[0] - start) == pytest.approx(100 * DT * cadence, rel=1e-6)


def test_cross_parameter_check_refuses_inverted_emg_thresholds():
    params = resolve(PARAMS, {'emg.threshold': 0.5, 'emg.full_activation': 0.3})
    assert 'must exceed' in check_params(params)


def test_cadence_prior_pulls_the_rate_toward_the_belt_cadence_by_a_known_fraction():
    reference = GaitReference(0.55)
    hip = reference.hip_curve()
    nominal = reference.stride_rate
    rates = {}
    for prior in (0.0, 0.2):
        estimator = HipCrossingPhase(hip, nominal, 0.3, cadence_prior=prior)
        grid = np.linspace(0, 1, len(hip))
        for k in range(40000):
            estimator.update(float(np.interp((k * DT * 1.25 * nominal) % 1.0, grid, hip)), 0.0, DT)
        rates[prior] = estimator.rate
    assert rates[0.0] == pytest.approx(1.25 * nominal, rel=0.01)
    # Fixed point of r <- r + 0.5 (r_walker - r), then r <- r + w (nominal - r), per crossing.
    w = 0.2
    expected = (0.5 * (1 - w) * 1.25 * nominal + w * nominal) / (1 - 0.5 * (1 - w))
    assert rates[0.2] == pytest.approx(expected, rel=0.01)


def walk_ahead(controller, lead, seconds, start=1.0):
    """Feed a walker whose posture is the controller's own reference `lead` cycles ahead."""
    stamp = start
    pos, slope = [0.0] * 6, [0.0] * 6
    q = list(controller.reference_position)
    for _ in range(int(seconds / DT)):
        controller.step(stamp, q, [0.0] * 6)
        controller.reference.sample_leg(controller.phases[0] + lead, pos, slope, 0)
        controller.reference.sample_leg(controller.phases[1] + lead, pos, slope, 3)
        q = list(pos)
        stamp += DT
    return stamp


def test_cooperative_phase_moves_toward_a_walker_ahead_of_it(dynamics, limits):
    moved = {}
    for hz in (0.0, 0.5):
        controller = make_controller(dynamics, limits, mode='cooperative', **{'phase.path_correction_hz': hz,
                                                                             'phase.leg_fusion': 0.0})
        walk_ahead(controller, 0.0, 3.0)  # past the re-synchronisation fade
        start = [wrap_half(p - e.phase) for p, e in zip(controller.phases, controller.estimators)]
        walk_ahead(controller, 0.03, 1.0, start=4.0)
        moved[hz] = [wrap_half(p - e.phase) - s for p, e, s in zip(controller.phases, controller.estimators, start)]
    assert moved[0.0] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert min(moved[0.5]) > 0.01


def test_cooperative_mode_starts_from_the_measured_posture(dynamics, limits):
    posture = [0.3, 0.2, 0.0, -0.1, 0.3, 0.1]
    controller = make_controller(dynamics, limits, mode='cooperative')
    assert controller.step(1.0, posture, [0.0] * 6) == [0.0] * 6
    assert controller.reference_position == pytest.approx(posture, abs=1e-9)


def test_compensation_leads_the_drive_lag(dynamics, limits):
    lag = 0.02
    controller = make_controller(dynamics, limits, mode='transparent', **{'compensation.drive_lag_s': lag,
                                                                          'safety.torque_ramp_s': 0.05})
    velocity = [0.5, -1.0, 0.3, 0.2, 0.4, -0.6]
    stamp, q = 1.0, [0.2, 0.4, 0.0, -0.1, 0.3, 0.1]
    for _ in range(200):  # constant velocity: the lead is a pure position prediction
        request = controller.step(stamp, q, velocity)
        q = [a + v * DT for a, v in zip(q, velocity)]
        stamp += DT
    q = [a - v * DT for a, v in zip(q, velocity)]
    ahead = [a + lag * v for a, v in zip(q, velocity)]
    expected = [g + f for g, f in zip(dynamics.gravity(ahead), dynamics.friction(velocity))]
    assert request == pytest.approx(expected, abs=1e-6)
