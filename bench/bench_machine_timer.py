"""The machine before anything runs: how late its timer wakes a thread that does nothing else.

exo_common.timer_probe (cyclictest's method) for 20 s on the idle machine, at a real-time priority
when permitted. No target: it is the floor under every real-time figure of the other parts, and
tells a run on a quiet machine from one on a machine that stalls by itself (a busy virtual
machine host). `ceiling_<rate>hz_pct`: the most a control loop at that rate could have delivered
on the idle machine, a loop that needs no time of its own but the stack's median
sample-to-command time (STACK_RESPONSE_S). bench_whole_stack runs the same probe beside the stack.
"""
from exo_common import timer_probe

STACK_RESPONSE_S = 0.0003  # the whole stack's median sample-to-command time at 1 kHz (README table)
RATES_HZ = (1000, 500)


def run(quick: bool = False) -> dict:
    measured = timer_probe.measure(3.0 if quick else 20.0)
    figures = timer_probe.summary(measured['latency_ns'], measured['realtime'])
    for rate in RATES_HZ:
        figures[f'ceiling_{rate}hz_pct'] = timer_probe.ceiling_pct(
            measured['due_ns'], measured['latency_ns'], 1.0 / rate, STACK_RESPONSE_S)
    return {**figures, 'failures': []}
