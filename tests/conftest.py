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
