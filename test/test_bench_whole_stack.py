"""bench/bench_whole_stack.py's verdicts, with the sessions stood in for (no stack is run)."""
import pathlib

from tools_loader import load_bench

bench = load_bench('bench_whole_stack')

GOOD = {'delivered_pct': 99.95, 'latency_p99_ms': 0.4, 'latency_max_ms': 1.5, 'exit_code': 0, 'faulted': False}


def test_a_failed_session_keeps_its_folder_and_a_passing_one_does_not(tmp_path, monkeypatch):
    verdicts = {1000: dict(GOOD, delivered_pct=99.5), 500: GOOD, 250: dict(GOOD, exit_code=1, faulted=True)}

    def session(rate, duration, record=True):
        folder = tmp_path / f'{int(rate)}'
        (folder / 'session').mkdir(parents=True)
        return dict(verdicts[rate], folder=str(folder), machine={})

    monkeypatch.setattr(bench, 'session', session)
    results = bench.run(quick=True)
    assert not (tmp_path / '500').exists() and 'folder' not in results['500hz']
    for rate in (1000, 250):
        assert pathlib.Path(results[f'{rate}hz']['folder']).is_dir()
    failure, = results['failures']
    assert failure.startswith('1000 Hz: delivered_pct 99.5') and str(tmp_path / '1000') in failure
    assert results['highest_rate_keeping_up_hz'] == 500


def test_cpu_of_processes_sharing_a_name_adds_up_each_on_its_own_clock():
    runner = [(t, 0.02 * t) for t in range(60)]  # 2 % of a core
    child = [(t, 100.0 + 0.5 * t) for t in range(20, 40)]  # a later process at 50 %, its clock far ahead
    loop = [(t, 0.7 * t) for t in range(60)]
    cpu = bench.cpu_by_process({('runner', 1): runner, ('runner', 2): child, ('loop', 3): loop})
    assert cpu == {'runner': 52.0, 'loop': 70.0}
