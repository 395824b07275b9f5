"""Self-contained HTML session and progress reports (matplotlib Agg, plots as base64 PNG)."""
import base64
import html
import io
import json
import math

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

LEG_COLOURS = {'left': 'tab:blue', 'right': 'tab:red'}


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=90, bbox_inches='tight')
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _series(points):
    return [p[0] for p in points], [p[1] for p in points]


def session_figures(summary: dict) -> dict:
    """Title -> base64 PNG for the plots of one session summary."""
    plots, figures = summary['plots'], {}
    curves = plots['joint_curves_deg']
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    phase = [i * 2 for i in range(51)]
    for k, joint in enumerate(curves['joints']):
        if curves['normative']:
            mean, sd = curves['normative']['mean_deg'][k], curves['normative']['sd_deg'][k]
            axes[k].fill_between(phase, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)],
                                 color='0.85', label='normative ±1 SD')
        for leg, values in curves['legs'].items():
            axes[k].plot(phase, values[k], color=LEG_COLOURS[leg], label=leg)
        axes[k].set_title(joint)
        axes[k].set_xlabel('gait cycle (%)')
    axes[0].set_ylabel('angle (deg)')
    axes[0].legend(fontsize=8)
    figures['Joint angles against the normative band (mean stride)'] = _png(figure)

    figure, axis = plt.subplots(figsize=(10, 3))
    for leg, points in plots['step_length_m'].items():
        axis.plot(*_series(points), '.-', color=LEG_COLOURS[leg], label=leg)
    axis.set_xlabel('time (s)')
    axis.set_ylabel('step length (m)')
    axis.legend()
    figures['Step length per stride'] = _png(figure)

    figure, axis = plt.subplots(figsize=(10, 3))
    axis.plot(*_series(plots['symmetry_step_length_percent']), '.-', color='tab:purple')
    axis.axhline(0.0, color='0.5', lw=0.8)
    axis.set_xlabel('time (s)')
    axis.set_ylabel('step length SI (%)')
    figures['Symmetry index of step length (+ = left longer)'] = _png(figure)

    figure, axis = plt.subplots(figsize=(10, 3))
    times, values = _series(plots['assistance'])
    if values:
        for index in range(max(len(v) for v in values)):
            axis.plot(times, [v[index] if index < len(v) else math.nan for v in values], label=f'[{index}]')
        axis.legend(fontsize=7, ncol=6)
    axis.set_xlabel('time (s)')
    axis.set_ylabel('assistance (%)')
    figures['Assistance over time (/gait_controller/assistance)'] = _png(figure)

    figure, axis = plt.subplots(figsize=(10, 3))
    for leg, points in plots['stride_time_s'].items():
        axis.plot(*_series(points), '.', color=LEG_COLOURS[leg], label=f'{leg} stride time')
    for fault in summary['faults']:
        axis.axvline(fault['time'], color='black', lw=0.8, ls='--')
    axis.set_xlabel('time (s)  (dashed: faults)')
    axis.set_ylabel('stride time (s)')
    axis.legend()
    figures['Gait events: stride time per heel strike, and faults'] = _png(figure)
    return figures


def _number(value, digits=2) -> str:
    if isinstance(value, float):
        return '–' if not math.isfinite(value) else f'{value:.{digits}f}'
    return html.escape(str(value))


def _table(rows, header) -> str:
    head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
    body = ''.join('<tr>' + ''.join(f'<td>{_number(c)}</td>' for c in row) + '</tr>' for row in rows)
    return f'<table><tr>{head}</tr>{body}</table>'


STYLE = ('body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}'
         'td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}h2{margin-top:1.5em}'
         '.warn{color:#b00;font-weight:bold}')


def _page(title: str, sections: list[str]) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{"".join(sections)}</body></html>')


def _images(figures: dict) -> list[str]:
    return [f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{png}">'
            for t, png in figures.items()]


def session_html(summary: dict) -> str:
    meta = summary['session']
    sections = [f'<p>Patient <b>{html.escape(summary["patient_id"])}</b>, started {html.escape(summary["started_utc"])}, '
                f'profile {html.escape(meta.get("profile", "") or "–")}, duration {summary["duration_s"]:.0f} s, '
                f'speed {_number(summary["speed_mps"])} m/s, mean assistance '
                f'{_number(summary["assistance_percent_mean"], 0)} %. File: {html.escape(summary["file"])}</p>']
    if summary['truncated']:
        sections.append('<p class="warn">The recording ends abruptly (not closed): this report covers what was '
                        'written before.</p>')
    keys = [k for k in summary['legs']['left'] if k != 'strides' and not k.endswith('.sd')]
    rows = [[k, summary['legs']['left'].get(k, math.nan), summary['legs']['right'].get(k, math.nan)] for k in keys]
    rows.insert(0, ['strides', summary['legs']['left']['strides'], summary['legs']['right']['strides']])
    sections.append('<h2>Mean per stride</h2>' + _table(rows, ['metric', 'left', 'right']))
    sections.append('<h2>Symmetry (SI = (L - R) / ((L + R) / 2) × 100 %)</h2>'
                    + _table(sorted(summary['symmetry_percent'].items()), ['metric', 'SI (%)']))
    sections += _images(session_figures(summary))
    sections.append('<h2>Faults (/diagnostics ERROR)</h2>' + (_table(
        [[f['time'], f['name'], f['message']] for f in summary['faults']], ['time (s)', 'source', 'message'])
        if summary['faults'] else '<p>none</p>'))
    sections.append(f'<h2>Cues given</h2><p>{len(summary["cues"])} cues; events: '
                    f'{html.escape(json.dumps(summary["events"]))}</p>')
    return _page('Gait training session report', sections)


def progress_html(patient: str, trends: dict, flags: list[str], rule: str) -> str:
    figure, axes = plt.subplots(2, 2, figsize=(11, 6))
    for axis, (name, series) in zip(axes.flat, trends.items()):
        for label, points in series.items():
            axis.plot(range(1, len(points) + 1), points, 'o-', label=label)
        axis.set_title(name)
        axis.set_xlabel('session')
        axis.legend(fontsize=8)
    sections = ['<p class="warn">' + html.escape(f) + '</p>' for f in flags] or ['<p>No worsening trend.</p>']
    sections.append(f'<p><i>Rule: {html.escape(rule)}</i></p>')
    sections += _images({'Trends across sessions': _png(figure)})
    return _page(f'Progress of patient {patient}', sections)
