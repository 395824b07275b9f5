"""exo_common.held_off: when the loop's thread got no CPU although it should have run (plain)."""
import pytest

from exo_common.held_off import HeldOffSpans


class FakeClocks:
    """Monotonic, thread-CPU and wall clocks the test moves by hand."""

    def __init__(self):
        self.now = 100.0
        self.cpu = 5.0
        self.wall_ns = 1_700_000_000_000_000_000

    def advance(self, wall_s: float, cpu_s: float) -> None:
        self.now += wall_s
        self.cpu += cpu_s
        self.wall_ns += round(wall_s * 1e9)

    def spans(self, threshold_s: float = 0.0005) -> HeldOffSpans:
        return HeldOffSpans(threshold_s, clock=lambda: self.now, cpu_clock=lambda: self.cpu,
                            wall_ns=lambda: self.wall_ns)


def test_work_that_got_the_cpu_is_not_held_off_however_long():
    clocks = FakeClocks()
    spans = clocks.spans()
    clocks.advance(0.003, 0.003)       # 3 ms of computing: slow, not held off
    assert spans.end() is None
    clocks.advance(0.0012, 0.0008)     # 0.4 ms off the CPU: under the threshold
    assert spans.end() is None
    assert spans.count == 0


def test_work_descheduled_or_blocked_in_the_middle_is_held_off_for_the_span():
    clocks = FakeClocks()
    spans = clocks.spans()
    started_ns = clocks.wall_ns
    clocks.advance(0.0021, 0.0002)     # 0.2 ms of work in 2.1 ms: 1.9 ms without the CPU
    assert spans.end() == (started_ns, clocks.wall_ns)
    assert spans.count == 1 and spans.longest_s == pytest.approx(0.0019)


def test_a_wait_is_held_off_only_past_its_deadline_and_less_the_work_done_there():
    clocks = FakeClocks()
    spans = clocks.spans()
    due = clocks.now + 0.0008
    clocks.advance(0.0009, 0.00005)    # slept to its deadline and woke 0.1 ms late
    assert spans.end(due) is None
    due = clocks.now + 0.0005
    clocks.advance(0.0035, 0.0002)     # woke 3 ms late after 0.2 ms of callbacks
    interval = spans.end(due)
    assert interval == (clocks.wall_ns - 3_000_000, clocks.wall_ns)   # from the deadline on
    assert spans.longest_s == pytest.approx(0.0028)
    due = clocks.now + 0.0002
    clocks.advance(0.0014, 0.0011)     # a callback computed past the deadline: the stack's own time
    assert spans.end(due) is None


def test_spans_follow_each_other_unless_one_is_begun():
    clocks = FakeClocks()
    spans = clocks.spans()
    clocks.advance(0.004, 0.0)         # waiting for another process's answer...
    spans.begin()                      # ...is not the thread's own span
    clocks.advance(0.0001, 0.0001)
    assert spans.end() is None
    clocks.advance(0.002, 0.0)         # the next span starts where the last ended
    assert spans.end() is not None


def test_the_threshold_must_be_positive():
    with pytest.raises(ValueError):
        HeldOffSpans(0.0)
