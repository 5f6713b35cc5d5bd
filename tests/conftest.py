import os

import pyro
import pytest
import torch

# Under pytest-xdist each worker gets one core: two workers x two threads would oversubscribe
# the 2-core CI machine and make every test slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture
def make_tour_context(tmp_path):
    """Build a ``TourContext`` on given data in ``tmp_path``: ``make(train, test, config=None,
    labels=(None, None), shape=(8, 8))`` (``config`` defaults to ``TourConfig.quick()``)."""
    from pyrogen.tour.config import TourConfig
    from pyrogen.tour.context import TourContext
    from pyrogen.tour.report import Report

    def make(train, test, config=None, labels=(None, None), shape=(8, 8)):
        return TourContext(
            out=tmp_path,
            config=TourConfig.quick() if config is None else config,
            device=torch.device("cpu"),
            seed=0,
            progress=False,
            report=Report("t"),
            train=train,
            test=test,
            train_labels=labels[0],
            test_labels=labels[1],
            image_shape=shape,
            data_name="digits" if shape == (8, 8) else "mnist5k",
        )

    return make
