"""Moved: the shape rules are ``scaling.shapes`` (issue 19); this name still imports them.

Kept so that sweep definitions and scripts written before the move (``from sweeps.shapes import
AspectRatioRule``) keep working; new code imports ``scaling.shapes``.
"""

from scaling.shapes import (
    CHINCHILLA_A9,
    AspectRatioRule,
    AspectRatiosRule,
    ChinchillaGridRule,
    NConvention,
    ShapeRule,
    ShapeRuleError,
    count_params,
    shape_rule_from_dict,
)

__all__ = [
    "CHINCHILLA_A9",
    "AspectRatioRule",
    "AspectRatiosRule",
    "ChinchillaGridRule",
    "NConvention",
    "ShapeRule",
    "ShapeRuleError",
    "count_params",
    "shape_rule_from_dict",
]
