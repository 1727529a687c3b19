"""The correlate scatter plots' hand-set margins keep every text on the figure and off the
neighbouring panel, for the panel counts and value ranges a run produces."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ntknas.report.plots import metric_scatter_figure


def _figure(epochs: tuple[int, ...], values: np.ndarray, metric: str):
    bn_modes = ("train", "eval")
    rows = [SimpleNamespace(bn=bn, train_epochs=e, values={metric: float(v)}, accuracy=float(a))
            for e in epochs for bn in bn_modes for v, a in zip(values, np.linspace(9.5, 94.2, values.size))]
    records = [{"metric": metric, "bn": bn, "train_epochs": e, "kendall": -0.123, "spearman": 0.456}
               for e in epochs for bn in bn_modes]
    config = SimpleNamespace(train_epochs=epochs, bn_modes=bn_modes)
    return metric_scatter_figure(metric, rows, records, config)


@pytest.mark.parametrize("epochs", [(0,), (0, 1), (0, 1, 3)])
@pytest.mark.parametrize("values", [
    np.geomspace(1e-3, 1e9, 12),  # log axis: ticks with exponents
    np.linspace(-123456.0, 987654.0, 12),  # long tick labels
    np.linspace(1e-7, 3e-7, 12),  # an offset text beside the axis
], ids=["log", "long", "offset"])
def test_every_text_lies_on_the_figure_and_off_the_neighbouring_panel(epochs, values):
    fig = _figure(epochs, values, "lga_init_kernel")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    page = fig.bbox
    panels = fig.axes
    for index, ax in enumerate(panels):
        drawn = ax.get_tightbbox(renderer)  # the panel with its title, labels and the tick labels drawn
        assert page.x0 <= drawn.x0 and drawn.x1 <= page.x1 and page.y0 <= drawn.y0 and drawn.y1 <= page.y1, \
            (index, drawn, page)
        for other in panels[:index] + panels[index + 1:]:
            assert not drawn.overlaps(other.bbox), index
