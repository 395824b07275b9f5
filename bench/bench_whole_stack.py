"""Whole stack in a real-time simulated session: latency, delivery, CPU and memory vs control rate.

Runs `exo-gait sim` (simulator, three sensor nodes, controller, safety supervisor, analyzer and
recorder, the embedded default layout) with a stroke patient for each rate, measures at the
simulator (loop_monitor: command arrival minus the raw encoder sample's stamp) and samples every
process's CPU time and memory from /proc. Targets (issue 9) at 1000 Hz and 500 Hz: >= 99.9 % of
commands delivered in time for their physics step, latency p99 <= 2 ms, max <= 5 ms, no fault.
Then short runs at rising rates find where the stack stops keeping up.

Beside each run, exo_common.timer_probe (cyclictest's method, at a real-time priority above the
stack's) measures how late the machine itself wakes a thread that does nothing else; under
`machine` each run reports those stalls, how many of the late or missing commands fell in
one, the steal time (/proc/stat: CPU time a virtual machine's host gave to others while
this machine wanted it), and the machine's ceiling (`ceiling_pct`): the most a loop at that
rate could have delivered on the probe's CPU if each period had cost it nothing but the run's
median response, i.e. the misses no stack could have prevented on that machine. The probe
sees one CPU; the loop's own thread reports from whichever CPU it ran on when it got no CPU for
0.5 ms while it should have run (`held_off`, exo_common.held_off: it woke late for its sample,
or was descheduled or blocked in its work), and `misses_while_held_off` counts the late or
missing commands with such a time inside their window, by span. The targets are judged on every
miss all the same.

A session that fails (a missed target, a fault, a crash) keeps its folder, named in the results
and in the failure: the session's recording and fault log, the loop statistics, the probe's
file. The others are deleted.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

import numpy as np

from exo_common import timer_probe

TARGETS = {'delivered_pct': 99.9, 'latency_p99_ms': 2.0, 'latency_max_ms': 5.0}
TARGET_RATES = (1000, 500)
SCALING_RATES = (250, 500, 1000)
BREAKING_RATES = (1500, 2000, 3000)
PATIENT = 'stroke_left_hemiparesis'
RUNNER_GRACE_S = 300  # start-up, shutdown and report on a slow machine; a runner stuck longer is killed


def _children(pid: int) -> list:
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as handle:
            direct = [int(p) for p in handle.read().split()]
    except OSError:
        return []
    found = []
    for child in direct:
        found += [child] + _children(child)
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError):
        return float('nan')


def _rss_mib(pid: int) -> float:
    try:
        for line in open(f'/proc/{pid}/status'):
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _name(pid: int) -> str:
    try:
        command = open(f'/proc/{pid}/cmdline').read().split('\0')
    except OSError:
        return str(pid)
    if 'exo_common.worker' in command:
        entries = json.loads(command[command.index('exo_common.worker') + 1])
        return '+'.join(entry['cli_args'][2].split(':=')[1] for entry in entries)
    return 'runner'


def _steal_and_total_ticks() -> tuple:
    """CPU time the machine's host gave to others while this virtual machine wanted to run
    (steal), and all CPU time, summed over CPUs, in clock ticks (/proc/stat)."""
    try:
        with open('/proc/stat') as handle:
            fields = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return (0, 0)
    return (fields[7], sum(fields))


def session(rate: float, duration: float, record: bool = True) -> dict:
    """One session; returns loop figures, CPU per process (% of one core), peak memory and the
    folder holding its session (recording, fault log), loop statistics and probe file."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix=f'bench_stack_{int(rate)}_'))
    stats = folder / 'loop.json'
    command = [sys.executable, '-m', 'exo_common.cli', 'sim', '--realtime', '--headless', '--no-report',
               '--duration', str(duration), '--patient', PATIENT, '--seed', '1',
               '--control-rate', str(rate), '--loop-stats', str(stats), '--output', str(folder / 'session')]
    if not record:
        command.append('--no-record')
    probe = subprocess.Popen([sys.executable, '-m', 'exo_common.timer_probe', '--duration', str(duration + 600),
                              '--out', str(folder / 'probe.npz')], stdout=subprocess.DEVNULL)
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: dict = {}
    peak_rss: dict = {}
    steal: list = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            now = time.monotonic()
            steal.append((time.time_ns(), *_steal_and_total_ticks()))
            for pid in [runner.pid] + _children(runner.pid):
                name = _name(pid)
                samples.setdefault((name, pid), []).append((now, _cpu_seconds(pid)))
                peak_rss[name] = max(peak_rss.get(name, 0.0), _rss_mib(pid))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        output, _ = runner.communicate(timeout=duration + RUNNER_GRACE_S)
    except subprocess.TimeoutExpired:
        runner.kill()
        output = runner.communicate()[0] + f'\nbench: the runner did not end within {RUNNER_GRACE_S} s of the session; killed'
    stop.set()
    sampler.join()
    probe.terminate()
    try:
        probe.wait(timeout=30)
    except subprocess.TimeoutExpired:
        probe.kill()
    cpu = cpu_by_process(samples)
    loop = json.loads(stats.read_text()) if stats.is_file() else {}
    late_windows = loop.pop('late_windows_ns', [])
    loop.pop('held_off_ns', None)  # in the session's loop.json
    window = loop.pop('window_ns', None)
    result = {**loop, 'cpu_pct': round(sum(cpu.values()), 1), 'cpu_pct_by_process': cpu,
              'peak_rss_mib_by_process': {k: round(v, 1) for k, v in peak_rss.items()},
              'peak_rss_mib': round(sum(peak_rss.values()), 1),
              'exit_code': runner.returncode, 'faulted': runner.returncode == 1}
    if runner.returncode not in (0, 1):
        result['error'] = output.strip().splitlines()[-3:]
    result['machine'] = machine_stalls(folder / 'probe.npz', window, late_windows, rate, loop.get('latency_p50_ms'))
    result['machine']['steal_pct'] = steal_pct(steal, window)
    result['folder'] = str(folder)
    return result


def keep_folder_if(figures: dict, keep: bool) -> None:
    """A session that failed keeps its folder (named in the figures) for a look at its fault log,
    recording and probe; one that did not is deleted (about 40 MB each at 1 kHz)."""
    folder = figures.pop('folder', None)
    if folder is None:
        return
    if keep:
        figures['folder'] = folder
    else:
        shutil.rmtree(folder, ignore_errors=True)


def cpu_by_process(samples: dict) -> dict:
    """Percent of a core by process name, over the middle of the run (start-up imports and
    shutdown are not the steady state), from {(name, pid): [(monotonic s, CPU s), ...]}.
    Processes of one name add up; each is measured against its own CPU clock (mixed into one
    series, a short-lived child of the runner once made it look like 41 % of a core)."""
    cpu: dict = {}
    for (name, _), points in samples.items():
        points = [p for p in points if p[1] == p[1]]
        steady = points[len(points) // 4: -max(1, len(points) // 8)] if len(points) > 8 else points
        if len(steady) >= 2 and steady[-1][0] > steady[0][0]:
            share = 100.0 * (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
            cpu[name] = round(cpu.get(name, 0.0) + share, 1)
    return cpu


def steal_pct(samples: list, window):
    """Steal time in percent of all CPU time over the loop's measurement window (None when
    not measurable: no /proc/stat, or a window under two seconds)."""
    inside = [s for s in samples if window[0] <= s[0] <= window[1]] if window else samples
    if len(inside) < 2 or inside[-1][2] <= inside[0][2]:
        return None
    return round(100.0 * (inside[-1][1] - inside[0][1]) / (inside[-1][2] - inside[0][2]), 2)


def machine_stalls(probe_file: pathlib.Path, window, late_windows: list, rate: float,
                   response_ms: Optional[float]) -> dict:
    """The probe's figures over the loop's measurement window (start-up excluded, as for the
    loop), the late or missing commands inside its stalls, and the machine's ceiling: the most
    a loop at this rate answering in response_ms (the run's median) could have delivered."""
    try:
        probe = np.load(probe_file)
    except OSError:
        return {'error': 'timer probe wrote nothing'}
    due, latency = probe['due_ns'], probe['latency_ns']
    if window:
        inside = (due >= window[0]) & (due < window[1])
        due, latency = due[inside], latency[inside]
    figures = timer_probe.summary(latency, bool(probe['realtime']))
    figures['late_or_missing_commands'] = len(late_windows)
    if figures['realtime_priority']:  # at normal priority its stalls include the stack's own load
        figures['of_which_in_machine_stalls'] = timer_probe.attribute(
            np.array(late_windows, dtype=np.int64), timer_probe.stalls(due, latency))
    if response_ms is not None and 0.0 <= response_ms * 1e-3 < 1.0 / rate:
        figures['ceiling_pct'] = timer_probe.ceiling_pct(due, latency, 1.0 / rate, response_ms * 1e-3)
    return figures


def _machine_note(figures: dict) -> str:
    machine = figures.get('machine', {})
    if 'stalls_over_1ms' not in machine:
        return ''
    note = (f'; the machine itself stalled {machine["stalls_over_1ms"]} times > 1 ms during the run, max'
            f' {machine["wakeup_max_ms"]} ms')
    if 'of_which_in_machine_stalls' in machine:
        note += (f', and {machine["of_which_in_machine_stalls"]} of the {machine["late_or_missing_commands"]}'
                 ' late or missing commands fell in a stall > 0.5 ms')
    if machine.get('steal_pct') is not None:
        note += f'; steal time {machine["steal_pct"]} % of the CPU time'
    if machine.get('ceiling_pct') is not None:
        note += (f'; on the probe\'s CPU a loop needing nothing but its median response every period'
                 f' would have delivered at most {machine["ceiling_pct"]} %')
    if 'misses_while_held_off' in figures:
        note += (f'; {figures["misses_while_held_off"]} of the late or missing commands fell while the'
                 f' loop\'s own thread got no CPU for 0.5 ms or more ({figures["misses_while_held_off_by_span"]})')
    return note


def run(quick: bool = False) -> dict:
    duration = 15.0 if quick else 60.0
    results, failures, failed_rates = {}, [], set()
    for rate in sorted(set(TARGET_RATES) | set(SCALING_RATES), reverse=True):
        figures = session(rate, duration)
        results[f'{rate}hz'] = figures
        if rate in TARGET_RATES:
            failures_before = len(failures)
            if figures.get('faulted') or figures.get('exit_code') != 0:
                failures.append(f'{rate} Hz: session ended with exit code {figures.get("exit_code")}')
            missed = []
            for key, target in TARGETS.items():
                value = figures.get(key)
                worse = value is None or (value < target if key == 'delivered_pct' else value > target)
                if worse:
                    missed.append(f'{key} {value} (target {"<=" if key != "delivered_pct" else ">="} {target})')
            if missed:
                failures.append(f'{rate} Hz: {", ".join(missed)}{_machine_note(figures)}')
            failed = len(failures) > failures_before
            keep_folder_if(figures, failed)
            if failed:
                failed_rates.add(rate)
                failures[-1] += f' (session kept in {figures["folder"]})'
        else:
            keep_folder_if(figures, figures.get('exit_code') != 0)
    keeping_up = max((r for r in TARGET_RATES if f'{r}hz' in results and r not in failed_rates), default=None)
    for rate in BREAKING_RATES if not quick else ():
        figures = session(rate, 15.0, record=True)
        results[f'{rate}hz'] = figures
        keep_folder_if(figures, figures.get('exit_code') != 0)
        ok = (figures.get('exit_code') == 0 and figures.get('delivered_pct', 0) >= TARGETS['delivered_pct']
              and figures.get('latency_p99_ms', 1e9) <= min(TARGETS['latency_p99_ms'], 2000.0 / rate))
        if not ok:
            break
        keeping_up = rate
    results['highest_rate_keeping_up_hz'] = keeping_up
    results['duration_s'] = duration
    results['failures'] = failures
    return results


if __name__ == '__main__':
    print(json.dumps(run(quick=bool(os.environ.get('QUICK'))), indent=1))
