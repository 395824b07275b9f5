"""Per-patient session summaries in SQLite, and the progress trends across sessions.

One database file (default ~/.local/share/exo_gait/sessions.db) holds every patient's
sessions, one row per session. Writes are single transactions in WAL mode with
synchronous=FULL: a process killed mid-write leaves the previous state intact (SQLite's
journal rolls the partial transaction back on the next open), never a half row.
"""
import json
import math
import pathlib
import sqlite3

import numpy as np

DEFAULT_STORE = pathlib.Path.home() / '.local' / 'share' / 'exo_gait' / 'sessions.db'

SCHEMA = '''
CREATE TABLE IF NOT EXISTS sessions (
    patient_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    duration_s REAL,
    speed_mps REAL,
    step_length_left_m REAL,
    step_length_right_m REAL,
    step_length_symmetry_percent REAL,
    assistance_percent REAL,
    gps_left_deg REAL,
    gps_right_deg REAL,
    summary_json TEXT NOT NULL,
    PRIMARY KEY (patient_id, session_id)
)'''

# Worsening rule, applied to each trend with at least MIN_SESSIONS sessions: the latest
# session is worse than the mean of the up to 4 sessions before it by more than the margin,
# and the least-squares slope over the last 3 sessions points the bad way too (a single
# bad day after a long improvement is flagged; noise around a plateau is not).
MIN_SESSIONS = 3
TRENDS = {  # name: (summary key, direction (+1 higher is better), margin, unit)
    'step length': ('step_length_m', +1, 0.03, 'm'),
    '|step length symmetry index|': ('abs_symmetry', -1, 5.0, '%'),
    'assistance needed': ('assistance_percent', -1, 10.0, '%'),
    'speed': ('speed_mps', +1, 0.05, 'm/s'),
}
RULE = ('a measure is flagged when the latest session is worse than the mean of the (up to 4) '
        'sessions before it by more than 0.03 m (step length), 5 points (|symmetry index|), '
        '10 points (assistance) or 0.05 m/s (speed), and the least-squares slope over the last 3 '
        'sessions points the same way; at least 3 sessions are needed.')


class StoreError(Exception):
    """The store cannot be opened or is not an exo_gait store (message names the file)."""


def _connect(path) -> sqlite3.Connection:
    path = pathlib.Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=10.0)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and 'sessions' not in tables:
            connection.close()
            raise StoreError(f'{path}: an SQLite database of something else (tables: {", ".join(sorted(tables))}); '
                             'not touching it')
        connection.execute('PRAGMA journal_mode=WAL')
        connection.execute('PRAGMA synchronous=FULL')
        connection.execute(SCHEMA)
        return connection
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f'{path}: cannot use as session store: {exc}') from exc


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def save_session(path, session_id: str, summary: dict) -> None:
    """Insert or replace one session's summary in one transaction.

    Raises:
        StoreError: the store cannot be written (names the file).
    """
    legs = summary['legs']
    row = (summary['patient_id'], session_id, summary['started_utc'] or session_id, _finite(summary['duration_s']),
           _finite(summary['speed_mps']), _finite(legs['left'].get('step_length_m')),
           _finite(legs['right'].get('step_length_m')),
           _finite(summary['symmetry_percent'].get('step_length_m')),
           _finite(summary['assistance_percent_mean']), _finite(legs['left'].get('gps_deg')),
           _finite(legs['right'].get('gps_deg')),
           json.dumps(summary, allow_nan=True))
    connection = _connect(path)
    try:
        with connection:
            connection.execute('INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)', row)
    except sqlite3.Error as exc:
        raise StoreError(f'{path}: cannot save session {session_id}: {exc}') from exc
    finally:
        connection.close()


def sessions(path, patient_id: str) -> list[dict]:
    """A patient's sessions, oldest first.

    Raises:
        StoreError: missing or foreign database.
    """
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise StoreError(f'{path}: no session store here')
    connection = _connect(path)
    try:
        connection.row_factory = sqlite3.Row
        rows = connection.execute('SELECT * FROM sessions WHERE patient_id = ? ORDER BY started_utc, session_id',
                                  (patient_id,)).fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f'{path}: cannot read: {exc}') from exc
    finally:
        connection.close()
    return [dict(row) for row in rows]


def trends(rows: list[dict]) -> dict:
    """Title -> {label: values per session} for the progress plot."""
    def column(name):
        return [row[name] if row[name] is not None else math.nan for row in rows]
    return {
        'step length (m)': {'left': column('step_length_left_m'), 'right': column('step_length_right_m')},
        'step length symmetry index (%)': {'SI': column('step_length_symmetry_percent')},
        'assistance needed (%)': {'mean assistance': column('assistance_percent')},
        'speed (m/s)': {'treadmill': column('speed_mps')},
    }


def worsening(rows: list[dict]) -> list[str]:
    """Sentences naming each measure that got worse by RULE."""
    measures = {
        'step_length_m': [_mean2(r['step_length_left_m'], r['step_length_right_m']) for r in rows],
        'abs_symmetry': [abs(r['step_length_symmetry_percent']) if r['step_length_symmetry_percent'] is not None
                         else math.nan for r in rows],
        'assistance_percent': [r['assistance_percent'] if r['assistance_percent'] is not None else math.nan
                               for r in rows],
        'speed_mps': [r['speed_mps'] if r['speed_mps'] is not None else math.nan for r in rows],
    }
    flags = []
    for title, (key, direction, margin, unit) in TRENDS.items():
        values = [v for v in measures[key] if math.isfinite(v)][-5:]
        if len(values) < MIN_SESSIONS:
            continue
        latest, before = values[-1], values[:-1]
        change = (latest - float(np.mean(before))) * direction
        slope = float(np.polyfit(np.arange(3), values[-3:], 1)[0]) * direction
        if change < -margin and slope < 0.0:
            flags.append(f'worsening {title}: latest {latest:.2f} {unit} vs {np.mean(before):.2f} {unit} '
                         f'over the previous {len(before)} sessions')
    return flags


def _mean2(a, b) -> float:
    values = [v for v in (a, b) if v is not None]
    return float(np.mean(values)) if values else math.nan
