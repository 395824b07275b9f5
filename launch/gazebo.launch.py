"""exo_gait on Gazebo Sim with gz_ros2_control (needs a full ROS 2 install with ros_gz).

xacro -> robot_state_publisher -> ros_gz_sim create; once the robot exists the
joint_state_broadcaster (published as /hw/joint_states by the plugin's remapping) and the
effort forward-command controller (/effort_controller/commands) are spawned in turn; /clock and
the five IMUs are bridged to /hw/imu/<frame>. Our nodes run on sim time; there is no EMG
source, so emg_node is not started and the controller runs without EMG.

    ros2 launch exo_gait gazebo.launch.py gui:=false assistance:=80.0
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import (Command, FindExecutable, LaunchConfiguration,
                                  PathJoinSubstitution, PythonExpression)
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from exo_common.joints import IMU_FRAMES
from exo_common.launch_support import declare_arguments, node_actions


def generate_launch_description():
    share = FindPackageShare('exo_gait')
    world = PathJoinSubstitution([share, 'config', 'gazebo', 'exo_gait_world.sdf'])
    robot_description = ParameterValue(Command([
        FindExecutable(name='xacro'), ' ', PathJoinSubstitution([share, 'urdf', 'exo_gait.urdf.xacro']),
        ' hardware:=gazebo',
        ' patient_height:=', LaunchConfiguration('patient_height'),
        ' patient_mass:=', LaunchConfiguration('patient_mass'),
        ' controllers_file:=', PathJoinSubstitution([share, 'config', 'ros2_controllers.yaml']),
    ]), value_type=str)

    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('ros_gz_sim'), 'launch', 'gz_sim.launch.py'])),
        launch_arguments={'gz_args': [
            PythonExpression(["'-r -v 1 ' + ('' if '", LaunchConfiguration('gui'), "' == 'true' else '-s --headless-rendering ')"]),
            world]}.items())
    robot_state_publisher = Node(
        package='robot_state_publisher', executable='robot_state_publisher', output='screen',
        parameters=[{'robot_description': robot_description, 'use_sim_time': True}])
    spawn = Node(
        package='ros_gz_sim', executable='create', output='screen',
        arguments=['-topic', 'robot_description', '-name', 'exo_gait', '-z', '0.0'])
    bridge = Node(
        package='ros_gz_bridge', executable='parameter_bridge', output='screen',
        arguments=['/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock']
        + [f'/hw/imu/{frame}@sensor_msgs/msg/Imu[gz.msgs.IMU' for frame in IMU_FRAMES])
    joint_state_broadcaster = Node(
        package='controller_manager', executable='spawner', output='screen',
        arguments=['joint_state_broadcaster', '--controller-manager', '/controller_manager'])
    effort_controller = Node(
        package='controller_manager', executable='spawner', output='screen',
        arguments=['effort_controller', '--controller-manager', '/controller_manager'])

    return LaunchDescription([
        DeclareLaunchArgument('gui', default_value='false',
                              description='Show the Gazebo window (false = headless server).'),
        DeclareLaunchArgument('patient_height', default_value='1.75',
                              description="Wearer's height in m (1.2 to 2.2), scales the URDF."),
        DeclareLaunchArgument('patient_mass', default_value='75.0',
                              description="Wearer's body mass in kg (30 to 200), scales the URDF."),
        *declare_arguments('gazebo', use_sim_time_default='true'),
        gazebo, robot_state_publisher, spawn, bridge,
        RegisterEventHandler(OnProcessExit(target_action=spawn, on_exit=[joint_state_broadcaster])),
        RegisterEventHandler(OnProcessExit(target_action=joint_state_broadcaster,
                                           on_exit=[effort_controller])),
        *node_actions('gazebo'),
    ])
