"""`exo-gait`: the one command for everything run outside ros2 launch.

    exo-gait sim       simulated gait-training session (whole stack on MuJoCo)
    exo-gait report    session report from a recording
    exo-gait progress  a patient's progress across sessions
    exo-gait bench     the benchmarks (--json for machines)
"""
import sys

COMMANDS = {
    'sim': ('exo_common.runner', 'sim_main'),
    'report': ('exo_analysis.cli', 'report_main'),
    'progress': ('exo_analysis.cli', 'progress_main'),
    'bench': ('exo_common.bench', 'bench_main'),
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
        print(__doc__.strip())
        sys.exit(0 if argv and argv[0] in ('-h', '--help') else 2)
    import importlib
    module, function = COMMANDS[argv[0]]
    sys.exit(getattr(importlib.import_module(module), function)(argv[1:]))


if __name__ == '__main__':
    main()
