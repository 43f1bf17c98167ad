"""The operator's console for runs (runs.py), blocks (blocks.py) and the dead-letter table
(failures.py: its replay is the engine's). Django's admin imports this package; each module registers
its model admins.

Everything here is read-only: outputs, counters and usage are written by the engine alone. Operations
are actions, and buttons on a row's page, that call the same services as the API. Pages stay cheap on
big tables: no full result counts, no block inputs or outputs on list pages, filters whose choices come
from small tables. List columns fit a 1,400 px screen (apps/core/admin.py).
"""

from apps.runs.admin import blocks, failures, runs  # noqa: F401  (they register the model admins)
