"""Parameters of the mujoco_sim node (ParamSpec) and their mapping onto ExoSimulation."""
from dataclasses import replace

from exo_common.description import HEIGHT_RANGE, MASS_RANGE
from exo_common.params import ParamSpec
from exo_sim import devices
from exo_sim.patient import PROFILE_NAMES
from exo_sim.simulation import SimOptions

NODE_NAME = 'mujoco_sim'
PACING_CHOICES = ('realtime', 'lockstep')

PARAM_SPECS = (
    ParamSpec('treadmill.speed_kmh', 2.0, 'Treadmill belt speed (applied at the belt acceleration)',
              'km/h', 0.5, 3.2, step=0.1),
    ParamSpec('bws.percent', 30.0, 'Body-weight support as a share of the patient weight (applied smoothly)',
              '%', 0.0, 100.0, step=1.0),
    ParamSpec('patient.profile', 'healthy', 'Patient impairment profile (config/patients/<name>.yaml)',
              read_only=True, choices=PROFILE_NAMES),
    ParamSpec('patient.height_m', 1.75, 'Patient standing height (scales the URDF)', 'm',
              HEIGHT_RANGE[0], HEIGHT_RANGE[1], read_only=True),
    ParamSpec('patient.mass_kg', 75.0, 'Patient body mass (scales the URDF and strength)', 'kg',
              MASS_RANGE[0], MASS_RANGE[1], read_only=True),
    ParamSpec('actuator.bandwidth_hz', 20.0, 'First-order torque bandwidth of the joint drives',
              'Hz', 1.0, 200.0),
    ParamSpec('encoder.resolution_bits', devices.ENCODER_BITS, 'Single-turn absolute encoder resolution',
              'bit', 10, 24, read_only=True),
    ParamSpec('encoder.effort_noise_nm', 0.1, 'Noise (1 sd) of the measured drive torque', 'Nm',
              0.0, 10.0, read_only=True),
    ParamSpec('imu.rate_hz', 100.0, 'Output rate of each of the five IMUs (wireless IMU networks of '
              'five or more sensors stream at about 100 Hz, e.g. Xsens MTw Awinda)', 'Hz', 50.0, 1000.0,
              read_only=True),
    ParamSpec('mains_hz', 50.0, 'Mains frequency of the hum in the raw EMG', 'Hz', read_only=True,
              check=lambda v: None if v in (50.0, 60.0) else f'mains_hz must be 50.0 or 60.0, got {v}'),
    ParamSpec('emg.hum_mv', 0.02, 'Amplitude of mains hum in the raw EMG', 'mV', 0.0, 1.0, read_only=True),
    ParamSpec('emg.noise_mv', 0.005, 'RMS baseline noise of the EMG amplifier', 'mV', 0.0, 1.0,
              read_only=True),
    ParamSpec('timestep_s', 0.001, 'Physics step; the control period (1 / control_rate_hz) is a '
              'whole number of steps', 's', 0.0002, 0.005,
              read_only=True),
    ParamSpec('pacing', 'realtime', 'realtime: wall-clock paced; lockstep: waits for each command '
              '(tests, with use_sim_time on /clock)', read_only=True, choices=PACING_CHOICES),
    ParamSpec('lockstep.wait_s', 0.05, 'Longest wait for the command answering a sample in lockstep',
              's', 0.001, 1.0),
    ParamSpec('command_timeout_s', 0.05, 'No command for this long (sim time): zero torque and a diagnostic',
              's', 0.002, 5.0),
    ParamSpec('truth.rate_hz', 100.0, 'Rate of the ~/truth/* topics (0 = off)', 'Hz', 0.0, 1000.0),
    ParamSpec('seed', 0, 'Seed of every noise source (same seed, same data)', '', 0, 2 ** 31 - 1,
              read_only=True),
)


def simulation_kwargs(params: dict, time_origin: float) -> dict:
    """ExoSimulation(**kwargs) for a node's parameter values."""
    options = SimOptions()
    emg = replace(options.emg, mains_hz=params['mains_hz'], hum_mv=params['emg.hum_mv'],
                  noise_mv=params['emg.noise_mv'])
    return dict(
        patient=params['patient.profile'], speed_kmh=params['treadmill.speed_kmh'],
        bws_percent=params['bws.percent'], seed=params['seed'], timestep=params['timestep_s'],
        patient_height=params['patient.height_m'], patient_mass=params['patient.mass_kg'],
        actuator_bandwidth_hz=params['actuator.bandwidth_hz'],
        encoder_bits=params['encoder.resolution_bits'],
        effort_noise_nm=params['encoder.effort_noise_nm'], imu_rate_hz=params['imu.rate_hz'],
        emg=emg, time_origin=time_origin)
