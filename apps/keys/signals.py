from django.dispatch import Signal

# Sent when a key's validation succeeds (the provider accepted it), inside the transaction that records
# the verdict, so that what receivers write commits with it or not at all: the key is never valid with
# runs still paused for it (apps.runs.receivers resumes them). Arguments: key_id.
key_validated = Signal()
