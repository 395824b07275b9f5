"""The machine before anything runs: how late its timer wakes a thread that does nothing else.

exo_common.timer_probe (cyclictest's method) for 20 s on the idle machine, at a real-time priority
when permitted. No target: it is the floor under every real-time figure of the other parts, and
tells a run on a quiet machine from one on a machine that stalls by itself (a busy virtual
machine host). bench_whole_stack runs the same probe beside the stack.
"""
from exo_common import timer_probe


def run(quick: bool = False) -> dict:
    measured = timer_probe.measure(3.0 if quick else 20.0)
    return {**timer_probe.summary(measured['latency_ns'], measured['realtime']), 'failures': []}
