"""`exo-gait report` and `exo-gait progress` (dispatched from exo_common.cli).

Errors (missing, corrupt, truncated beyond use, foreign files; an unusable store) are printed
as one line naming the file, with exit code 1; never a traceback.
"""
import argparse
import json
import math
import pathlib
import sys

from exo_analysis import store
from exo_analysis.mcap_io import RecordingError, find_recording


def _json_default(value):
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


def _clean(value):
    """NaN/inf -> None, so the JSON is standard (browsers, jq) and round-trips."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def report_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='exo-gait report', description=(
        'Session report: HTML with plots and the numbers as JSON, from a recording; the summary is '
        'also saved in the patient store.'))
    parser.add_argument('session', help='session directory or .mcap file')
    parser.add_argument('--out', help='output directory (default: next to the recording)')
    parser.add_argument('--store', default=str(store.DEFAULT_STORE), help='session store (SQLite) [%(default)s]')
    parser.add_argument('--no-store', action='store_true', help='do not save the summary in the store')
    args = parser.parse_args(argv)
    try:
        from exo_analysis import report, session
        recording = find_recording(args.session)
        summary = _clean(session.summarise(session.replay(recording)))
        if not summary['legs']['left']['strides'] and not summary['legs']['right']['strides']:
            print(f'warning: {recording}: no complete stride found', file=sys.stderr)
        out = pathlib.Path(args.out) if args.out else recording.parent
        out.mkdir(parents=True, exist_ok=True)
        html_path = out / f'{recording.stem}_report.html'
        json_path = out / f'{recording.stem}_report.json'
        json_path.write_text(json.dumps(summary, indent=1, default=_json_default))
        html_path.write_text(report.session_html(summary))
        if not args.no_store:
            store.save_session(args.store, recording.stem, summary)
    except (RecordingError, store.StoreError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: a clear line, not a traceback
        print(f'error: {args.session}: cannot report ({type(exc).__name__}: {exc})', file=sys.stderr)
        return 1
    if summary['truncated']:
        print(f'warning: {recording}: recording was not closed cleanly; report covers what was written',
              file=sys.stderr)
    print(f'wrote {html_path} and {json_path}')
    return 0


def progress_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='exo-gait progress', description=(
        "A patient's trends across sessions (step length, symmetry, assistance, speed), flagging worsening."))
    parser.add_argument('--patient', required=True, help='patient id')
    parser.add_argument('--store', default=str(store.DEFAULT_STORE), help='session store (SQLite) [%(default)s]')
    parser.add_argument('--out', default='.', help='output directory [%(default)s]')
    args = parser.parse_args(argv)
    try:
        from exo_analysis import report
        rows = store.sessions(args.store, args.patient)
        if not rows:
            print(f'error: {args.store}: no sessions of patient {args.patient!r}', file=sys.stderr)
            return 1
        flags = store.worsening(rows)
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        html_path = out / f'progress_{args.patient}.html'
        json_path = out / f'progress_{args.patient}.json'
        trends = store.trends(rows)
        html_path.write_text(report.progress_html(args.patient, trends, flags, store.RULE))
        json_path.write_text(json.dumps(_clean({'patient_id': args.patient, 'sessions': [r['session_id'] for r in rows],
                                                'trends': trends, 'worsening': flags, 'rule': store.RULE}), indent=1))
    except (store.StoreError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: a clear line, not a traceback
        print(f'error: {args.store}: cannot build progress ({type(exc).__name__}: {exc})', file=sys.stderr)
        return 1
    for flag in flags:
        print(f'WARNING: {flag}')
    print(f'wrote {html_path} and {json_path}')
    return 0
