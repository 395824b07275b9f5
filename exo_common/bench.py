"""`exo-gait bench`: every benchmark in bench/, the same way every time, as a table or JSON.

Each bench/bench_<part>.py defines run(quick=False) -> dict of figures; a 'failures' list in
that dict names missed targets. Each part runs in a fresh process (no state carried between
parts). Exit code 1 when a part fails or misses a target, naming which.
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from exo_common.paths import share_path

PART_TIMEOUT_S = 1800


def machine() -> dict:
    info = {'python': platform.python_version(), 'cores': os.cpu_count(), 'platform': platform.platform()}
    try:
        for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                info['cpu'] = line.split(':', 1)[1].strip()
                break
        meminfo = pathlib.Path('/proc/meminfo').read_text().split()
        info['memory_gib'] = round(int(meminfo[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        from importlib.metadata import version
        info['rclpy'] = version('ros-rclpy')
        info['mujoco'] = version('mujoco')
    except Exception:
        pass
    return info


def parts() -> dict:
    folder = share_path('bench')
    return {path.stem.removeprefix('bench_'): path for path in sorted(folder.glob('bench_*.py'))}


def run_part(path: pathlib.Path, quick: bool) -> dict:
    code = (f'import json, runpy, sys; module = runpy.run_path({str(path)!r}); '
            f'print("@@RESULT@@" + json.dumps(module["run"](quick={quick})))')
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                              timeout=PART_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {'failures': [f'timed out after {PART_TIMEOUT_S} s']}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith('@@RESULT@@'):
            result = json.loads(line[len('@@RESULT@@'):])
            result.setdefault('wall_s', round(time.monotonic() - started, 1))
            return result
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return {'failures': [f'crashed (exit {done.returncode}): ' + ' | '.join(tail)]}


def flatten(prefix: str, value, rows: list) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f'{prefix}.{key}' if prefix else key, item, rows)
    elif not isinstance(value, list):
        rows.append((prefix, value))


def table(results: dict) -> str:
    lines = ['| figure | value |', '|---|---|']
    for part, figures in results.items():
        if part == 'machine':
            continue
        rows = []
        flatten(part, {k: v for k, v in figures.items() if k != 'failures'}, rows)
        lines += [f'| {name} | {value} |' for name, value in rows]
    machine_info = results.get('machine', {})
    lines.append('')
    lines.append('Machine: ' + ', '.join(f'{k} {v}' for k, v in machine_info.items()))
    return '\n'.join(lines)


def bench_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='exo-gait bench', description=__doc__.splitlines()[0])
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
    parser.add_argument('--quick', action='store_true', help='short runs (smoke test, not for figures)')
    parser.add_argument('--only', nargs='*', default=None, help='run only these parts')
    parser.add_argument('--out', type=pathlib.Path, default=None, help='also write the JSON here')
    options = parser.parse_args(argv)
    available = parts()
    selected = options.only or list(available)
    unknown = [name for name in selected if name not in available]
    if unknown:
        print(f'exo-gait bench: unknown part(s) {unknown}; available: {list(available)}', file=sys.stderr)
        return 2
    results = {'machine': machine()}
    selected.sort(key=lambda name: name == 'whole_stack')  # the long one last
    failures = []
    for name in selected:
        if not options.json:
            print(f'running {name} ...', file=sys.stderr, flush=True)
        results[name] = run_part(available[name], options.quick)
        failures += [f'{name}: {failure}' for failure in results[name].get('failures', [])]
    if options.out:
        options.out.write_text(json.dumps(results, indent=1) + '\n')
    print(json.dumps(results) if options.json else table(results))
    for failure in failures:
        print(f'MISSED: {failure}', file=sys.stderr)
    return 1 if failures else 0
