"""The whole exo_gait stack on the MuJoCo simulator (same graph as `exo-gait sim`).

    ros2 launch exo_gait sim.launch.py patient:=stroke_left_hemiparesis speed:=2.0 bws:=30.0
"""
from launch import LaunchDescription

from exo_common.launch_support import declare_arguments, node_actions


def generate_launch_description():
    return LaunchDescription(declare_arguments('sim') + node_actions('sim'))
