"""Batch mode: a run's due blocks go to the provider as Message Batches (half price, results within a
day) instead of live calls, on the same ledger:

- submit.py  claim due blocks (budget reserved as for live calls, at batch prices), write the batch
             row, then create it at the provider: one batch per claim, never two
- poll.py    beat: look at open batches, cancel what was asked, stream the results of ended ones into
             the outcome path live calls use (fencing, attempts, counts, cost, dead-letter, passes)
- results.py one result line -> one Outcome, with the same error classes as live calls
- transitions.py  the batch row's statuses and every move between them (submit and poll decide when)
"""
