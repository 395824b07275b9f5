"""One process of the embedded runner: several nodes on one events executor.

Usage (by exo_common.runner): python -m exo_common.worker '<json list of node launches>'
Each entry: {"module": ..., "class_name": ..., "cli_args": [...]} where cli_args are the same
`--ros-args --params-file ... -r ... -p ...` a launch file would give the node's own process.
"""
import importlib
import json
import sys

from exo_common.ros import run_nodes

SWITCH_INTERVAL_S = 0.0002


def factories(entries: list) -> list:
    made = []
    for entry in entries:
        node_class = getattr(importlib.import_module(entry['module']), entry['class_name'])
        made.append(lambda cls=node_class, args=entry['cli_args']: cls(cli_args=args))
    return made


def main() -> None:
    # A CPU-bound thread (the simulator's physics loop) keeps the GIL for up to the switch
    # interval (5 ms by default) while a message callback waits: far too long for a 1 kHz loop.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    entries = json.loads(sys.argv[1])
    sys.exit(run_nodes(factories(entries), args=sys.argv[:1]))


if __name__ == '__main__':
    main()
