"""exo_gait: one ament_python package; also pip-installable into a virtual environment."""
import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'exo_gait'
NODES = {
    'encoder_node': 'exo_sensors.encoder_node:main',
    'imu_node': 'exo_sensors.imu_node:main',
    'emg_node': 'exo_sensors.emg_node:main',
    'gait_controller': 'exo_control.gait_controller_node:main',
    'safety_supervisor': 'exo_safety.safety_supervisor_node:main',
    'mujoco_sim': 'exo_sim.mujoco_sim_node:main',
    'gait_analyzer': 'exo_analysis.gait_analyzer_node:main',
    'session_recorder': 'exo_analysis.recorder:main',
    'loop_monitor': 'exo_common.loop_monitor:main',
}


def tree(folder):
    """(install dir, files) pairs installing a folder below share/exo_gait, keeping sub-folders."""
    pairs = {}
    for path in glob.glob(os.path.join(folder, '**', '*'), recursive=True):
        if os.path.isfile(path) and '__pycache__' not in path:
            pairs.setdefault(os.path.join('share', PACKAGE, os.path.dirname(path)), []).append(path)
    return sorted(pairs.items())


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=['exo_*', 'exo_*.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        *tree('launch'), *tree('urdf'), *tree('config'), *tree('data'), *tree('bench'),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='exo_gait maintainers',
    maintainer_email='maintainers@exo-gait.invalid',
    description='ROS 2 stack for lower-limb rehabilitation exoskeletons in gait training',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [f'{name} = {target}' for name, target in NODES.items()]
        + ['exo-gait = exo_common.cli:main'],
    },
)
