"""`exo-gait sim`: the whole stack on MuJoCo without ros2 launch.

Starts the same nodes with the same config files as launch/sim.launch.py (both read
exo_common.graph), grouped into a few processes, enables the safety supervisor once the
sensors are live, prints progress, stops cleanly (torque off first, recording closed), writes a
summary and the session report.

Exit codes: 0 the session ended cleanly (also after Ctrl-C / SIGTERM), 1 it ended in a safety
fault, 2 configuration error, 3 the stack failed to come up or a process died.
"""
import argparse
import dataclasses
import datetime
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import yaml

from exo_common import graph
from exo_common.config import load_node_params
from exo_common.params import ConfigError
from exo_common.paths import share_path

EXIT_CLEAN, EXIT_FAULT, EXIT_CONFIG, EXIT_STARTUP = 0, 1, 2, 3
# Timing limits of a simulated session unless --strict-timing: a whole Python stack sharing two
# cores with its own simulator stalls now and then for tens of ms (bench/bench_whole_stack.py),
# and on simulated time each process's /clock arrives with its own delay; with the configured
# limits (10 ms ages, 5 ms clock lead) every session would end in a watchdog fault. The
# interlocks, the watchdogs themselves and every other check stay as configured.
SIMULATION_TIMING_S = {
    ('safety_supervisor', 'watchdog.joint_states_max_age'): 0.1,
    ('safety_supervisor', 'watchdog.request_max_age'): 0.1,
    ('safety_supervisor', 'watchdog.imu_max_age'): 0.2,
    ('safety_supervisor', 'watchdog.max_future'): 0.2,
    ('encoder_node', 'plausibility.max_age'): 0.1,
    ('encoder_node', 'plausibility.max_future'): 0.2,
    ('imu_node', 'plausibility.max_age'): 0.2,
    ('imu_node', 'plausibility.max_future'): 0.2,
    ('emg_node', 'plausibility.max_age'): 0.2,
    ('emg_node', 'plausibility.max_future'): 0.2,
    ('gait_controller', 'input.max_age_s'): 0.1,
    ('gait_controller', 'input.max_future_s'): 0.2,
}
MAIN_JOB_DURATION_S = 60.0


MAX_PHYSICS_TIMESTEP_S = 0.001


def physics_timestep(control_rate_hz: float) -> float:
    """The physics step for a control rate: its period divided by the smallest whole number
    that makes it at most MAX_PHYSICS_TIMESTEP_S (1 kHz and slower: 1 ms; 1.5 kHz: 0.67 ms)."""
    period = 1.0 / control_rate_hz
    return period / math.ceil(period / MAX_PHYSICS_TIMESTEP_S - 1e-9)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='exo-gait sim',
        description='Simulated gait-training session: the whole exo_gait stack on MuJoCo.')
    defaults = {argument.name: argument for argument in graph.ARGUMENTS}
    parser.add_argument('--duration', type=float, default=MAIN_JOB_DURATION_S,
                        help='session length in simulated seconds (default %(default)s)')
    parser.add_argument('--patient', default=defaults['patient'].default,
                        help='patient profile, a file stem in config/patients/ (default %(default)s)')
    parser.add_argument('--patient-id', default=None,
                        help='patient identifier for the session store (default: the profile name)')
    parser.add_argument('--assistance', type=float, default=float(defaults['assistance'].default),
                        help='assistance upper bound for both legs, percent (default %(default)s)')
    parser.add_argument('--speed', type=float, default=float(defaults['speed'].default),
                        help='treadmill speed, km/h (default %(default)s)')
    parser.add_argument('--bws', type=float, default=float(defaults['bws'].default),
                        help='body-weight support, percent of body weight (default %(default)s)')
    parser.add_argument('--mode', default=defaults['mode'].default,
                        choices=('transparent', 'guidance', 'cooperative', 'path'),
                        help='gait controller mode (default %(default)s)')
    parser.add_argument('--no-aan', dest='aan', action='store_false',
                        help='keep assistance fixed (assist-as-needed off)')
    parser.add_argument('--seed', type=int, default=int(defaults['seed'].default),
                        help='random seed of the simulation (default %(default)s)')
    parser.add_argument('--output', type=pathlib.Path, default=None,
                        help='session folder for recording, logs and report '
                             '(default ./exo_gait_sessions/<date>_<patient>)')
    parser.add_argument('--headless', action='store_true', default=not os.environ.get('DISPLAY'),
                        help='no viewer window (the default when there is no display)')
    parser.add_argument('--no-record', dest='record', action='store_false',
                        help='do not record the session')
    parser.add_argument('--no-report', dest='report', action='store_false',
                        help='do not write the session report at the end')
    parser.add_argument('--realtime', dest='lockstep', action='store_false',
                        help='pace the simulator by the wall clock (default: lock-step on simulated '
                             'time, every command reaching the physics step it answers)')
    parser.add_argument('--config-dir', type=pathlib.Path, default=None,
                        help='read node config files from this folder instead of config/')
    parser.add_argument('--control-rate', type=float, default=None, metavar='HZ',
                        help='closed-loop rate: encoder samples and commands; the physics step is the '
                             'period divided by the smallest whole number that makes it at most 1 ms '
                             '(default: config, 1000)')
    parser.add_argument('--strict-timing', action='store_true',
                        help='keep the configured watchdog and staleness limits (10 ms at 1 kHz); '
                             'by default a simulated session widens them to SIMULATION_TIMING_S '
                             '(see README, "Timing of simulated sessions")')
    parser.add_argument('--realtime-priority', action=argparse.BooleanOptionalAction, default=None,
                        help='real-time (SCHED_FIFO) scheduling of the control loop and sensor '
                             'processes, as ros2_control\'s controller manager asks for it (needs '
                             'root, CAP_SYS_NICE or an rtprio limit; without, normal priority and '
                             'a note in the log); default: on with --realtime, off in lock-step, '
                             'where timing cannot change the session')
    parser.add_argument('--separate-simulator', action='store_true',
                        help='run the simulator in a process of its own (one DDS hop each way, '
                             'as a hardware driver in its own process); default: in the control '
                             'loop\'s process, samples and commands handed over in-process')
    parser.add_argument('--loop-stats', type=pathlib.Path, default=None, metavar='FILE',
                        help='measure command latency and delivery at the simulator, JSON to FILE')
    return parser


class SessionPlan:
    """Everything decided before any process starts; config errors surface here."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.realtime_priority = (not options.lockstep if options.realtime_priority is None
                                  else options.realtime_priority)
        self.config_dir = options.config_dir or share_path('config')
        self.output = options.output or pathlib.Path('exo_gait_sessions') / (
            datetime.datetime.now().strftime('%Y%m%d_%H%M%S_') + options.patient)
        self._check_patient()
        values = {'patient': options.patient, 'assistance': options.assistance,
                  'speed': options.speed, 'bws': options.bws, 'aan': options.aan, 'mode': options.mode,
                  'seed': options.seed}
        overrides = graph.parameter_overrides(values)
        self.nodes = graph.nodes('sim', record=options.record)
        if options.loop_stats:
            self.nodes += (graph.LOOP_MONITOR,)
        if options.separate_simulator:  # the loop monitor measures where the actuators are
            self.nodes = tuple(dataclasses.replace(spec, group='sim')
                               if spec.name in (graph.SIMULATOR.name, graph.LOOP_MONITOR.name) else spec
                               for spec in self.nodes)
        self.parameters = {}
        for spec in self.nodes:
            node_overrides = dict(overrides.get(spec.name, {}))
            node_overrides.update(self._session_parameters(spec.name))
            self.parameters[spec.name] = load_node_params(
                spec.name, spec.parameter_specs(), self.config_dir / f'{spec.name}.yaml', node_overrides)

    def _check_patient(self) -> None:
        profiles = sorted(p.stem for p in (self.config_dir / 'patients').glob('*.yaml'))
        if self.options.patient not in profiles:
            raise ConfigError(f'unknown patient profile {self.options.patient!r}: no '
                              f'{self.config_dir / "patients" / (self.options.patient + ".yaml")} '
                              f'(available: {", ".join(profiles) or "none"})')

    def _session_parameters(self, node_name: str) -> dict:
        extra = {}
        if self.options.lockstep:  # simulated time: every command reaches its physics step
            extra['use_sim_time'] = True
            if node_name == 'mujoco_sim':
                extra['pacing'] = 'lockstep'
        if node_name == 'mujoco_sim' and not self.options.headless:
            extra['viewer'] = True
        rate = self.options.control_rate
        if rate:
            if node_name == 'mujoco_sim':
                extra['control_rate_hz'] = rate
                extra['timestep_s'] = physics_timestep(rate)
            if node_name == 'safety_supervisor':  # the same number of control periods as at 1 kHz
                extra['watchdog.joint_states_max_age'] = 10.0 / rate
                extra['watchdog.request_max_age'] = 10.0 / rate
        if not self.options.strict_timing:
            for (node, name), seconds in SIMULATION_TIMING_S.items():
                if node == node_name:
                    extra[name] = max(seconds, extra.get(name, 0.0))
        if node_name == 'loop_monitor':
            extra['output'] = str(self.options.loop_stats.resolve())
            extra['control_rate_hz'] = rate or 1000.0
        if node_name == 'safety_supervisor':
            extra['fault_log.path'] = str((self.output / 'safety_faults.jsonl').resolve())
        if node_name == 'session_recorder':
            extra['output_dir'] = str(self.output.resolve())
            extra['patient.id'] = self.options.patient_id or self.options.patient
            extra['session.profile'] = self.options.patient
            extra['session.speed_mps'] = self.options.speed / 3.6
            extra['session.assistance_percent'] = self.options.assistance
        return extra

    def write_params(self) -> dict:
        """One effective params file per node in the session folder; returns name -> path."""
        folder = self.output / 'params'
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for spec in self.nodes:
            path = folder / f'{spec.name}.yaml'
            values = dict(self.parameters[spec.name])
            if self.options.lockstep:
                values['use_sim_time'] = True
            path.write_text(yaml.dump({spec.name: {'ros__parameters': values}}, Dumper=_QuotingDumper,
                                      sort_keys=True))
            paths[spec.name] = path
        return paths


class _QuotingDumper(yaml.SafeDumper):
    """Quotes every string: rcl's parameter parser reads a bare y/n/on/off as a boolean."""


_QuotingDumper.add_representer(
    str, lambda dumper, text: dumper.represent_scalar('tag:yaml.org,2002:str', text, style="'"))


def cli_args(spec: graph.NodeSpec, params_file: pathlib.Path) -> list:
    args = ['--ros-args', '-r', f'__node:={spec.name}', '--params-file', str(params_file)]
    for source, target in spec.remappings:
        args += ['-r', f'{source}:={target}']
    return args


def start_groups(plan: SessionPlan, params_files: dict, log_dir: pathlib.Path) -> dict:
    """One worker process per group; returns group -> Popen. Output goes to log files."""
    groups: dict = {}
    for spec in plan.nodes:
        groups.setdefault(spec.group, []).append({
            'module': spec.module, 'class_name': spec.class_name,
            'cli_args': cli_args(spec, params_files[spec.name])})
    processes = {}
    log_dir.mkdir(parents=True, exist_ok=True)
    for group, entries in groups.items():
        log = open(log_dir / f'{group}.log', 'w')
        priority = graph.GROUP_PRIORITY.get(group, 0) if plan.realtime_priority else 0
        processes[group] = subprocess.Popen(
            [sys.executable, '-m', 'exo_common.worker', json.dumps(entries),
             str(graph.GROUP_NICENESS.get(group, 0)), str(priority)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return processes


def stop_groups(processes: dict, timeout: float = 8.0) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sim_main(argv=None) -> int:
    options = build_parser().parse_args(argv)
    try:
        plan = SessionPlan(options)
    except ConfigError as exc:
        print(f'exo-gait sim: configuration error: {exc}', file=sys.stderr)
        return EXIT_CONFIG
    plan.output.mkdir(parents=True, exist_ok=True)
    params_files = plan.write_params()

    from exo_common.session import SessionMonitor  # rclpy import only after config checks
    stop = threading.Event()
    interrupted = []

    def on_signal(signum, frame):
        interrupted.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    if options.mode == 'transparent':
        assistance = 'no assistance (gravity and friction compensation only)'
    else:
        assistance = (f'assistance <= {options.assistance} % '
                      f'({"assist-as-needed" if options.aan else "fixed"})')
    print(f'exo-gait sim: patient {options.patient}, {options.speed} km/h, BWS {options.bws} %, '
          f'{options.mode} mode, {assistance}, {options.duration:.0f} s -> {plan.output}', flush=True)
    processes = start_groups(plan, params_files, plan.output / 'logs')
    monitor = SessionMonitor(use_sim_time=options.lockstep)
    outcome = EXIT_CLEAN
    try:
        outcome = monitor.run(options.duration, processes, stop, [spec.name for spec in plan.nodes])
    finally:
        monitor.torque_off()
        stop_groups(processes)
        summary = monitor.summary(outcome, interrupted=bool(interrupted))
        try:  # everything the session leaves is written before leaving ROS (SessionMonitor.close)
            (plan.output / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
            print_summary(summary, plan.output)
            if options.record and options.report:
                write_report(plan.output)
        finally:
            sys.stdout.flush()
            monitor.close()
    return outcome


def print_summary(summary: dict, output: pathlib.Path) -> None:
    print('\nsession summary')
    for key, value in summary.items():
        print(f'  {key.replace("_", " ")}: {value}')
    print(f'  folder: {output}')


def write_report(output: pathlib.Path) -> None:
    try:
        from exo_analysis.cli import report_main
    except ImportError:
        return
    code = report_main([str(output)])
    if code != 0:
        print(f'exo-gait sim: report could not be written (exit {code})', file=sys.stderr)
