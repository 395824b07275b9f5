"""The exoskeleton's own gravity and drive friction, from the URDF (Pinocchio).

The model is the exoskeleton without the wearer (exo_common.description.expand_xacro(
wearer=False)), with the pelvis fixed and upright: the torque each joint needs to hold the exo
structure of the legs against gravity. Friction uses the URDF <dynamics damping friction> of
each joint: viscous plus Coulomb, the Coulomb part smoothed with tanh(v / v_smooth) so that
encoder noise at rest does not chatter.
"""
import math

import numpy as np
import pinocchio as pin

from exo_common.joints import JOINT_NAMES


class ExoDynamics:
    """Gravity and friction torques of the exoskeleton's joints, JOINT_NAMES order.

    Args:
        urdf_xml: the exoskeleton-only URDF.
        friction_smoothing: velocity (rad/s) over which Coulomb friction builds up.

    Raises:
        ValueError: the URDF lacks an actuated joint.
    """

    def __init__(self, urdf_xml: str, friction_smoothing: float = 0.05):
        self.model = pin.buildModelFromXML(urdf_xml)
        self.data = self.model.createData()
        missing = [name for name in JOINT_NAMES if not self.model.existJointName(name)]
        if missing:
            raise ValueError(f'URDF lacks joint(s) {missing}')
        self._index = [self.model.joints[self.model.getJointId(name)].idx_q for name in JOINT_NAMES]
        self._q = np.zeros(self.model.nq)
        self.damping = [float(self.model.damping[i]) for i in self._index]
        self.coulomb = [float(self.model.friction[i]) for i in self._index]
        self.friction_smoothing = friction_smoothing

    def gravity(self, q: list) -> list:
        """Torque (Nm) that holds the exo links against gravity at joint angles q (rad)."""
        buffer = self._q
        for value, i in zip(q, self._index):
            buffer[i] = value
        tau = pin.computeGeneralizedGravity(self.model, self.data, buffer)
        return [float(tau[i]) for i in self._index]

    def friction(self, qd: list, scale: float = 1.0) -> list:
        """Torque (Nm) that cancels the drives' viscous and Coulomb friction at velocities qd."""
        smooth = self.friction_smoothing
        return [scale * (d * v + c * math.tanh(v / smooth))
                for d, c, v in zip(self.damping, self.coulomb, qd)]
