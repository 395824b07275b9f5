"""exo_gait's nodes only, for a real exoskeleton whose drivers publish /hw/* and take
/effort_controller/commands.

    ros2 launch exo_gait bringup.launch.py assistance:=60.0 record:=true
"""
from launch import LaunchDescription

from exo_common.launch_support import declare_arguments, node_actions


def generate_launch_description():
    return LaunchDescription(declare_arguments('hardware') + node_actions('hardware'))
