"""What every API endpoint shares: the error shape, throttles and pagination.

Views in any app use these; nothing here knows about runs, keys or failures."""
