import os


# Must be set before torch loads its OpenMP runtime. On a CPU shared by several processes (as on CI runners and the
# development machine), OpenMP threads that spin while waiting slow these tests several times over (measured with
# `pytest tests/vision`: 115 s -> 18 s at load average 8 on 2 cores); passive waiting costs little on an idle machine.
# Only effective when torch has not been imported yet (e.g. `pytest tests/vision`); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
