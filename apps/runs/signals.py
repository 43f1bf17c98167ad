from django.dispatch import Signal

# Sent exactly once per pass of a run that ends (complete or canceled), after the finalising UPDATE
# committed. Arguments: run_id, status, pass_number.
run_finished = Signal()
