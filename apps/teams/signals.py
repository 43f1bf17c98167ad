"""What the teams app tells the apps above it, which it does not import.

- `spend_limit_changed(team_id)`: a team's or a member's limit was set, raised, lowered or removed,
  after commit. The engine resumes the team's runs that the new limit can pay for
  (apps/runs/receivers.py).
- `spend_threshold_reached(team_id, user_id, level, spent_usd, limit_usd, period)`: a team's (or,
  with `user_id`, a member's) spend reached 80 or 100 percent of its limit, once per crossing, after
  commit. The webhooks app records a signed `team.spend` event (apps/webhooks/receivers.py)."""

from django.dispatch import Signal

spend_limit_changed = Signal()
spend_threshold_reached = Signal()
