"""One process of the embedded runner: several nodes on one events executor.

Usage (by exo_common.runner): python -m exo_common.worker '<json list of node launches>' NICE PRIORITY
NICE is the process's niceness; PRIORITY > 0 asks for SCHED_FIFO real-time scheduling.
Each entry: {"module": ..., "class_name": ..., "cli_args": [...]} where cli_args are the same
`--ros-args --params-file ... -r ... -p ...` a launch file would give the node's own process.
"""
import importlib
import gc
import json
import os
import sys

from exo_common.ros import run_nodes

SWITCH_INTERVAL_S = 0.005


def factories(entries: list) -> list:
    made = []
    for entry in entries:
        node_class = getattr(importlib.import_module(entry['module']), entry['class_name'])
        made.append(lambda cls=node_class, args=entry['cli_args']: cls(cli_args=args))
    return made


def use_niceness(niceness: int) -> None:
    """Scheduling weight of this process: lower niceness wins the CPU sooner on a busy machine.
    Raising it needs no privilege; lowering it below 0 does (root or CAP_SYS_NICE), and is
    skipped without."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except (AttributeError, PermissionError, OSError):
        if niceness > 0:
            raise


def use_realtime_priority(priority: int) -> None:
    """SCHED_FIFO at `priority` for this process, as real-time control loops run; without the
    permission (root, CAP_SYS_NICE or an rtprio limit) it stays at normal priority and says so."""
    if priority <= 0:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, PermissionError, OSError) as exc:
        print(f'exo_gait worker: no real-time priority ({exc}); running at normal priority',
              file=sys.stderr, flush=True)


def main() -> None:
    # The simulator's physics thread holds the process lock through each step, so a callback
    # that took the GIL from it mid-step would wait for the lock next. A short interval (0.2 ms,
    # used while callbacks could run mid-step) measured no better since: 99.2 % against 99.5 %
    # of 1 kHz commands in time, one 30 s run each. Python's default, stated.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if os.environ.get('EXO_GAIT_GC', '1') == '0':
        gc.disable()
    if len(sys.argv) > 3:
        use_niceness(int(sys.argv[2]))
        use_realtime_priority(int(sys.argv[3]))
    entries = json.loads(sys.argv[1])
    sys.exit(run_nodes(factories(entries), args=sys.argv[:1]))


if __name__ == '__main__':
    main()
