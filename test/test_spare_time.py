"""SpareTimeWork: deferred device work runs in order, only before the deadline, never lost."""
from exo_sim.spare_time import SpareTimeWork


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_items_run_in_order_until_the_deadline_and_wait_for_the_next_cycle():
    clock = FakeClock()
    work = SpareTimeWork(max_backlog=20, clock=clock)
    done = []

    def item(name, duration):
        def run():
            done.append(name)
            clock.now += duration
        return run

    for name in 'abcd':
        work.add(item(name, 0.3))
    assert work.run(deadline=0.5) == 2       # a at 0.0, b at 0.3; c would start at 0.6
    assert done == ['a', 'b'] and len(work) == 2
    assert work.run(deadline=0.5) == 0       # deadline passed: nothing more this cycle
    clock.now = 1.0
    assert work.run(deadline=2.0) == 2
    assert done == ['a', 'b', 'c', 'd'] and len(work) == 0


def test_a_backlog_beyond_its_limit_runs_regardless_of_the_deadline():
    clock = FakeClock()
    work = SpareTimeWork(max_backlog=3, clock=clock)
    done = []
    for k in range(5):
        work.add(lambda k=k: done.append(k))
    assert work.run(deadline=-1.0) == 2      # down to the limit, oldest first
    assert done == [0, 1] and len(work) == 3
