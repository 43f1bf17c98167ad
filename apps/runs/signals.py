from django.dispatch import Signal

# Sent exactly once per run ending (complete or canceled), after the finalising UPDATE committed.
# Arguments: run_id, status.
run_finished = Signal()
