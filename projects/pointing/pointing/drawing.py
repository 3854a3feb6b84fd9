"""Points drawn as dots on the overlay (show-dir hook, tools/infer.py, the web demo): predicted
points in the prediction colours, GT points as green rings."""
from __future__ import annotations

import numpy as np

from ullava.visualization import register_field_drawer
from ullava.visualization.visualizer import PRED_COLOURS


@register_field_drawer('pred_points', 'gt_points')
def draw_points(vis, points, colour) -> None:
    """``points`` xy pixels [k,2]; ``colour`` None for predictions, GT's colour for targets."""
    points = np.asarray(points.cpu() if hasattr(points, 'cpu') else points, float).reshape(-1, 2)
    if not len(points):
        return
    radius = max(2.0, max(vis.width, vis.height) / 60)
    if colour is None:
        colours = [PRED_COLOURS[k % len(PRED_COLOURS)] for k in range(len(points))]
        vis.draw_circles(points, np.full(len(points), radius), face_colors=colours,
                         edge_colors=colours, alpha=1.0)
    else:
        vis.draw_circles(points, np.full(len(points), radius * 1.6), edge_colors=colour,
                         line_widths=2, alpha=1.0)
