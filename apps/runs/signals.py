from django.dispatch import Signal

# Sent exactly once per pass of a run that ends (complete or canceled), after the finalising UPDATE
# committed. Arguments: run_id, status, pass_number.
run_finished = Signal()

# Sent inside the transaction that records a batch of outcomes, after the blocks are written and only
# for blocks whose result this batch applied (the lease fence let it through), so a receiver's writes
# commit or roll back with the result itself. Arguments: run_id, settled ({block id: terminal status}).
blocks_settled = Signal()
