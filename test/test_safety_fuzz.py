"""Property-based fuzz of the plain supervisor with the URDF's joint limits.

Random requests (any float, NaN and Inf included) and random sensor states (inside, at and
beyond the joint limits, non-finite, tilted) through a supervisor that starts ENABLED and
engaged. Whatever happens, every command it returns is finite, within the effort limit, and
never pushes a joint further into a position limit it is in the soft zone of.
"""
import math

from hypothesis import HealthCheck, given, settings, strategies as st

from exo_common.description import joint_limits
from exo_common.joints import JOINT_NAMES
from exo_common.params import resolve
from exo_safety.supervisor import ENABLED, PARAMETERS, Supervisor

LIMITS = [joint_limits()[name] for name in JOINT_NAMES]
N = len(JOINT_NAMES)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)


def mostly(usual, rare, weight: int = 40):
    """usual about weight times as often as rare (st.one_of would pick each half the time)."""
    return st.sampled_from([False] * weight + [True]).flatmap(lambda is_rare: rare if is_rare else usual)


TORQUE = mostly(st.floats(-500.0, 500.0), ANY_FLOAT)


def _position(limit):
    """Mostly within the hard limits (soft zones included), rarely beyond them or not finite."""
    inside = st.floats(limit.lower - 0.005, limit.upper + 0.005)
    edges = st.sampled_from([limit.lower, limit.upper, limit.lower + 0.05, limit.upper - 0.05])
    beyond = st.floats(limit.lower - 1.0, limit.upper + 1.0)
    return mostly(st.one_of(inside, edges), st.one_of(beyond, ANY_FLOAT))


POSITIONS = st.tuples(*[_position(limit) for limit in LIMITS])
VELOCITIES = st.tuples(*[mostly(st.floats(-limit.velocity, limit.velocity), ANY_FLOAT) for limit in LIMITS])
SMALL_TILT = st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.floats(-1.0, 1.0), st.just(1.0))
QUATERNION = mostly(SMALL_TILT, st.one_of(st.tuples(*[st.floats(-1.0, 1.0)] * 4), st.tuples(*[ANY_FLOAT] * 4)),
                    weight=10)
CYCLE = st.tuples(st.lists(TORQUE, min_size=N, max_size=N), POSITIONS, VELOCITIES, QUATERNION,
                  st.booleans())
PARAMS = resolve(PARAMETERS, {'engage.ramp_time': 0.0})
START = [0.5 * (limit.lower + limit.upper) for limit in LIMITS]


def engaged_supervisor(safe_mode: str) -> tuple[Supervisor, float]:
    sup = Supervisor(LIMITS, {**PARAMS, 'safe_mode': safe_mode})
    t = 10.0
    sup.on_joint_states(t, list(JOINT_NAMES), START, [0.0] * N, [], t, t)
    sup.on_pelvis_imu(t, (0.0, 0.0, 0.0, 1.0), True, (0.0, 0.0, 0.0), (0.0, 0.0, 9.81), t, t)
    sup.on_request(t, list(JOINT_NAMES), [0.0] * N, START, [0.0] * N, t, t)
    assert sup.enable(True, t, t)[0]
    t += 0.001
    sup.on_joint_states(t, list(JOINT_NAMES), START, [0.0] * N, [], t, t)
    sup.on_request(t, list(JOINT_NAMES), [0.0] * N, START, [0.0] * N, t, t)
    assert sup.state == ENABLED and sup.engaged
    return sup, t


def check(sup: Supervisor, command) -> None:
    if command is None:
        return
    envelope = sup.envelope
    for i in range(N):
        torque, q = command[i], sup.position[i]
        assert math.isfinite(torque), f'{JOINT_NAMES[i]}: {torque}'
        assert abs(torque) <= envelope.effort_max[i], f'{JOINT_NAMES[i]}: {torque} above the limit'
        assert not (torque > 0.0 and q >= envelope.soft_upper[i]), f'{JOINT_NAMES[i]} pushed up at {q}'
        assert not (torque < 0.0 and q <= envelope.soft_lower[i]), f'{JOINT_NAMES[i]} pushed down at {q}'


@settings(max_examples=10_000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cycles=st.lists(CYCLE, min_size=1, max_size=2), safe_mode=st.sampled_from(['zero', 'damping']))
def test_no_command_exceeds_a_limit_pushes_into_one_or_carries_nan(cycles, safe_mode):
    sup, t = engaged_supervisor(safe_mode)
    for request, position, velocity, quaternion, reference_at_posture in cycles:
        t += 0.001
        check(sup, sup.on_joint_states(t, list(JOINT_NAMES), position, velocity, [], t, t))
        check(sup, sup.on_pelvis_imu(t, quaternion, True, (0.0, 0.0, 0.0), (0.0, 0.0, 9.81), t, t))
        reference = sup.position if reference_at_posture else START
        check(sup, sup.on_request(t, list(JOINT_NAMES), request, reference, [0.0] * N, t, t))
        check(sup, sup.tick(t, t, 0.0))
