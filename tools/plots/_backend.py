"""Selects matplotlib's Agg backend before anything imports pyplot: a server has no display.

Imported first by `tools.plots`, so it runs before optuna's plotting modules load pyplot.
"""

import matplotlib

matplotlib.use("Agg")

import logging

# matplotlib logs every categorical axis of numeric-looking strings at INFO: noise here.
logging.getLogger("matplotlib").setLevel(logging.WARNING)
