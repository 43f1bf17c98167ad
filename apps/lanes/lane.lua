-- One lane's capacity, shared by every worker process: a provider key and a model's rate-limit
-- group. Atomic, so two workers on two hosts never take the same token. Entry points by ARGV[1]:
--
-- Both take a batch, so a serving loop refilling many slots, or settling every call that ended since
-- its last turn, pays one round trip for all of them.
--
-- acquire: may these calls start now (in order)? Each must find the lane open (not throttled by a 429's Retry-After,
--   not stopped for persistent overload), room in the lane's concurrency window (AIMD), room under
--   the run's parallelism, and its reservation in every limited bucket (requests, input tokens,
--   output tokens per minute; token buckets refilled continuously at limit/60 per second, as the API
--   describes its own limiter). Granted: the reservation is taken and the call is registered in
--   flight. The first call refused stops the batch: how long to wait and why.
-- settle: calls ended. Each one's reservation is reconciled with the real usage, the limits and remaining
--   counts the provider sent in its anthropic-ratelimit-* headers are learned, and the window grows
--   (success) or is cut (overload, only when overload is dense: sparse 529s just back off the call).
--   The window never stays below the lane's useful concurrency (Little's law: the calls per second
--   its limits allow x the latency it measures x headroom) once both are known, except while an
--   overload cut is in force.
--
-- KEYS[1] lane hash, KEYS[2] zset of the lane's calls in flight (member call id, score = expiry ms),
-- KEYS[3] zset of the run's blocks in flight (member "<call>:<i>", score = expiry ms).
-- In-flight entries carry an expiry, so a worker that dies mid-call leaks nothing for long.

local DIMS = {'r', 'i', 'o'}
local UNLIMITED = 1000000000

local function num(v, default)
  if v == false or v == nil or v == '' then return default end
  return tonumber(v)
end

local function load(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

local function save(key, h)
  local flat = {}
  for k, v in pairs(h) do
    flat[#flat + 1] = k
    flat[#flat + 1] = tostring(v)
  end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
  redis.call('PEXPIRE', key, 86400000 * 7)
end

-- Limits in force: what the provider said (headers) wins over a tier guess; a limit the key's owner
-- set explicitly is a cap that always applies.
local function limits(h, cfg)
  local lim = {}
  for _, d in ipairs(DIMS) do
    local learned = num(h['lim_' .. d], 0)
    local configured = cfg[d]
    local value = learned
    if learned == 0 then value = configured
    elseif cfg.explicit and configured > 0 and configured < learned then value = configured end
    lim[d] = value
  end
  return lim
end

-- A bucket holds `burst` seconds of its limit (at least one unit: one request, one token); it
-- refills at the limit's rate. A call bigger than the bucket needs a full one.
local function size(cap, burst)
  return math.max(1, cap * burst / 60)
end

local function refill(h, lim, now, safety, burst)
  local t = num(h.t, now)
  local dt = math.max(0, now - t)
  for _, d in ipairs(DIMS) do
    local cap = lim[d]
    if cap > 0 then
      local full = size(cap, burst)
      local lvl = num(h['lvl_' .. d], full)
      lvl = math.min(full, lvl + dt * cap * safety / 60000)
      h['lvl_' .. d] = lvl
    end
  end
  h.t = now
end

-- Little's law: the calls the lane can use in flight = the calls per second its limits allow (the
-- binding one of requests, input tokens / the average input of a call, output tokens / the average
-- output of a call; at the safety share) x the latency it measures (s) x headroom. 0: not known yet.
local function useful_concurrency(h, lim, safety, headroom)
  local latency = num(h.latency, 0)
  if latency <= 0 then return 0 end
  local per_second = nil
  if lim.r > 0 then per_second = lim.r / 60 end
  for _, d in ipairs({'i', 'o'}) do
    local avg = num(h['avg_' .. d], 0)
    if lim[d] > 0 and avg > 0 then
      local calls = lim[d] / 60 / avg
      if per_second == nil or calls < per_second then per_second = calls end
    end
  end
  if per_second == nil then return 0 end
  return math.ceil(per_second * safety * latency / 1000 * headroom)
end

-- What PostgreSQL remembers of the lane, put back into a hash that lost it. What the hash already
-- knows (a settle since the flush learned it from headers) wins.
local function seed(h, m)
  local known = false
  for _, d in ipairs(DIMS) do
    if m[d] > 0 then
      known = true
      if num(h['lim_' .. d], 0) == 0 then
        h['lim_' .. d] = m[d]
        h.src = 'memory'
      end
    end
  end
  if known then h.heard = '1' end
  if num(h.latency, 0) == 0 and m.latency > 0 then h.latency = m.latency end
  local window = math.max(m.window, m.useful)
  if window > 0 then h.cwnd = math.max(num(h.cwnd, 0), window) end
  if m.useful > 0 then h.useful = m.useful end
  h.seeded = '1'
end

-- acquire: ARGV[3] expiry ms, [4] the run's parallelism, [5..8] configured limits (r, i, o,
-- explicit), [9] safety, [10] initial window, [11] window once limits are known, [12] burst seconds,
-- [13] '1' when [14..19] carry what PostgreSQL remembers of the lane (limits r, i, o, latency ms,
-- window, useful concurrency; zeros: nothing) else '0', [20] n, then per call (in the order they
-- would start) its id, blocks, input tokens, output tokens. Grants the leading calls that fit, stops
-- at the first that does not: {granted, wait ms, why it stopped} ('cold': the lane needs seeding,
-- ask again with [13] = '1').
local function acquire(now)
  local expiry, parallelism = tonumber(ARGV[3]), tonumber(ARGV[4])
  local cfg = {r = tonumber(ARGV[5]), i = tonumber(ARGV[6]), o = tonumber(ARGV[7]),
               explicit = ARGV[8] == '1'}
  local safety, initial_window = tonumber(ARGV[9]), tonumber(ARGV[10])
  -- Limits known from the key itself: the buckets pace from the first call, no cautious start.
  if cfg.r > 0 or cfg.i > 0 or cfg.o > 0 then initial_window = tonumber(ARGV[11]) end
  local burst = tonumber(ARGV[12])
  local n = tonumber(ARGV[20])
  local h = load(KEYS[1])
  if h.seeded ~= '1' then
    if ARGV[13] ~= '1' then return {0, 0, 'cold'} end
    seed(h, {r = tonumber(ARGV[14]), i = tonumber(ARGV[15]), o = tonumber(ARGV[16]),
             latency = tonumber(ARGV[17]), window = tonumber(ARGV[18]), useful = tonumber(ARGV[19])})
    save(KEYS[1], h)
  end
  local throttled = num(h.until_throttled, 0)
  if throttled > now then return {0, throttled - now, 'throttled'} end
  local paused = num(h.until_paused, 0)
  if paused > now then return {0, paused - now, 'overloaded'} end
  local cwnd = num(h.cwnd, initial_window)
  local calls = redis.call('ZCARD', KEYS[2])
  local blocks = redis.call('ZCARD', KEYS[3])
  local lim = limits(h, cfg)
  refill(h, lim, now, safety, burst)
  -- Limits known, latency not yet (a key that declared its tier, or the first responses still out):
  -- Little's law cannot size the window before a call has come back, and the buckets already pace
  -- starts at the rate the limits allow, so the calls in flight grow to rate x latency by themselves.
  -- Until then the lane can use up to a minute of requests (what it shows as its useful concurrency,
  -- so a process's ceiling lets them through); the first settle sets both by Little's law.
  local window = cwnd
  if lim.r > 0 and num(h.latency, 0) <= 0 then
    window = math.max(cwnd, lim.r)
    h.useful = window
  end
  local granted, wait, why = 0, 0, 'ok'
  for k = 0, n - 1 do
    local at = 21 + 4 * k
    local call, nblocks = ARGV[at], tonumber(ARGV[at + 1])
    local need = {r = 1, i = tonumber(ARGV[at + 2]), o = tonumber(ARGV[at + 3])}
    if calls >= math.floor(window) then why = 'window' break end
    -- A pack bigger than the run's parallelism still goes, alone.
    if blocks > 0 and blocks + nblocks > parallelism then why = 'parallelism' break end
    for _, d in ipairs(DIMS) do
      local cap = lim[d]
      if cap > 0 then
        -- A call bigger than the whole bucket needs a full bucket, else it could never start.
        local want = math.min(need[d], size(cap, burst))
        local lvl = h['lvl_' .. d]
        if lvl < want then
          local w = (want - lvl) * 60000 / (cap * safety)
          if w > wait then wait, why = w, 'rate_' .. d end
        end
      end
    end
    if wait > 0 then break end
    for _, d in ipairs(DIMS) do
      if lim[d] > 0 then h['lvl_' .. d] = h['lvl_' .. d] - need[d] end
    end
    h.res_i = num(h.res_i, 0) + need.i
    h.res_o = num(h.res_o, 0) + need.o
    calls, blocks = calls + 1, blocks + nblocks
    -- The most calls in flight lately: the window grows only while it is what limits the lane.
    h.peak = math.max(num(h.peak, 0), calls)
    -- Calls started per minute, exponentially decayed over a minute (what "current rate" shows).
    local rate_t = num(h.rate_t, now)
    h.rate = num(h.rate, 0) * math.exp(-math.max(0, now - rate_t) / 60000) + 1
    h.rate_t = now
    redis.call('ZADD', KEYS[2], expiry, call)
    for b = 0, nblocks - 1 do redis.call('ZADD', KEYS[3], expiry, call .. ':' .. b) end
    granted = granted + 1
  end
  if granted > 0 then
    h.cwnd = cwnd
    redis.call('PEXPIRE', KEYS[2], 86400000)
    redis.call('PEXPIRE', KEYS[3], 86400000)
  end
  if granted > 0 or wait > 0 then save(KEYS[1], h) end
  return {granted, math.ceil(wait), why}
end

-- One ended call, read from ARGV[at ..]: id, blocks, reserved input and output tokens, used input
-- and output tokens, outcome, retry-after ms, the headers' (limit, remaining) for requests, input and
-- output tokens, latency ms.
local function settle_one(h, cfg, now, at, c)
  local call, nblocks = ARGV[at], tonumber(ARGV[at + 1])
  local reserved = {i = tonumber(ARGV[at + 2]), o = tonumber(ARGV[at + 3])}
  local used = {i = tonumber(ARGV[at + 4]), o = tonumber(ARGV[at + 5])}
  local outcome, retry_after = ARGV[at + 6], tonumber(ARGV[at + 7])
  local hdr = {r = {tonumber(ARGV[at + 8]), tonumber(ARGV[at + 9])},
               i = {tonumber(ARGV[at + 10]), tonumber(ARGV[at + 11])},
               o = {tonumber(ARGV[at + 12]), tonumber(ARGV[at + 13])}}
  local latency = tonumber(ARGV[at + 14])
  local was_registered = redis.call('ZREM', KEYS[2], call)
  for b = 0, nblocks - 1 do redis.call('ZREM', KEYS[3], call .. ':' .. b) end
  local lim = limits(h, cfg)
  if was_registered == 1 then
    h.res_i = math.max(0, num(h.res_i, 0) - reserved.i)
    h.res_o = math.max(0, num(h.res_o, 0) - reserved.o)
    -- Reconcile: give back what was reserved and not used, or take what was used beyond it.
    if lim.i > 0 then h.lvl_i = math.min(size(lim.i, c.burst), num(h.lvl_i, 0) + reserved.i - used.i) end
    if lim.o > 0 then h.lvl_o = math.min(size(lim.o, c.burst), num(h.lvl_o, 0) + reserved.o - used.o) end
    if outcome == 'ok' then
      -- What a call really uses, on average: how many calls per second the token limits allow.
      h.avg_i = num(h.avg_i, used.i) * 0.8 + used.i * 0.2
      h.avg_o = num(h.avg_o, used.o) * 0.8 + used.o * 0.2
    end
  end
  local calls = redis.call('ZCARD', KEYS[2])
  local cwnd = num(h.cwnd, c.initial_window)
  if h.heard ~= '1' and (hdr.r[1] > 0 or hdr.i[1] > 0 or hdr.o[1] > 0) then
    -- The first response that tells the limits ends the cautious start: from here the buckets pace
    -- the lane, and the window only guards against overload.
    h.heard = '1'
    cwnd = math.max(cwnd, c.window_after_headers)
  end
  -- Learn from the headers: the provider's limit, and its remaining count as an upper bound on our
  -- level. The provider counted this call, and every call of ours admitted before it, when it
  -- admitted them (at their start), so `remaining` already lacks them; since then its bucket refilled
  -- for the call's latency. Our own level already took the calls we started since.
  for _, d in ipairs(DIMS) do
    local limit, remaining = hdr[d][1], hdr[d][2]
    if limit > 0 and limit < UNLIMITED then
      h['lim_' .. d] = limit
      h.src = 'headers'
      local cap = limits(h, cfg)[d]
      local full = size(cap, c.burst)
      local lvl = num(h['lvl_' .. d], full)
      if remaining >= 0 then
        local refilled = math.max(0, latency) * limit * c.safety / 60000
        lvl = math.min(lvl, remaining + refilled)
      end
      h['lvl_' .. d] = math.min(lvl, full)
    elseif limit >= UNLIMITED then
      h['lim_' .. d] = 0
    end
  end
  local ssthresh = num(h.ssthresh, 1e9)
  local ov = num(h.ov, 0)
  if latency > 0 then h.latency = num(h.latency, latency) * 0.8 + latency * 0.2 end
  local peak = num(h.peak, 0)
  h.peak = math.max(calls, peak * 0.995)
  if outcome == 'ok' then
    ov = ov * 0.9
    h.pause_k = 0
    -- Grow only while the window is what limits the lane (RFC 7661), so a later cut bites:
    -- doubling per round trip below ssthresh (slow start), one call per round trip above it.
    if cwnd < ssthresh then
      if peak >= math.floor(cwnd) * 0.5 then cwnd = cwnd + 1 end
    elseif peak >= math.floor(cwnd) * 0.8 then
      cwnd = cwnd + 1 / cwnd
    end
  elseif outcome == 'overload' then
    ov = ov * 0.9 + 0.1
    local cooldown = math.max(250, math.min(2000, num(h.latency, 500)))
    if ov > c.cut_threshold and now - num(h.last_cut, 0) >= cooldown then
      ssthresh = math.max(c.min_window, cwnd * 0.75)
      cwnd = math.max(c.min_window, math.floor(cwnd * 0.5))
      h.last_cut = now
      if cwnd <= c.min_window and ov > 0.5 then
        -- Overload persists even one call at a time: stop the lane for a while, longer each time.
        local k = num(h.pause_k, 0) + 1
        h.pause_k = k
        h.until_paused = now + math.min(c.pause_max, 1000 * 2 ^ (k - 1))
      end
    end
  elseif outcome == 'throttled' then
    h.until_throttled = math.max(num(h.until_throttled, 0), now + retry_after)
    for _, d in ipairs(DIMS) do
      if lim[d] > 0 then h['lvl_' .. d] = math.min(num(h['lvl_' .. d], 0), 0) end
    end
  end
  h.cwnd, h.ssthresh, h.ov = cwnd, ssthresh, ov
  return calls
end

-- settle: ARGV[3..6] configured limits, [7] safety, [8] initial window, [9] min window, [10] overload
-- share that cuts, [11] longest overload pause ms, [12] window once limits are known, [13] burst
-- seconds, [14] concurrency headroom, [15] n, then n ended calls of 15 values each (settle_one).
-- {window, calls in flight, learned limits r, i, o, latency ms, useful concurrency, seeded 1/0} after
-- the last (what apps/lanes/memory.py keeps in PostgreSQL).
local function settle(now)
  local cfg = {r = tonumber(ARGV[3]), i = tonumber(ARGV[4]), o = tonumber(ARGV[5]),
               explicit = ARGV[6] == '1'}
  local safety = tonumber(ARGV[7])
  local c = {initial_window = tonumber(ARGV[8]), min_window = tonumber(ARGV[9]),
             cut_threshold = tonumber(ARGV[10]), pause_max = tonumber(ARGV[11]),
             window_after_headers = tonumber(ARGV[12]), burst = tonumber(ARGV[13]), safety = safety}
  local headroom = tonumber(ARGV[14])
  local n = tonumber(ARGV[15])
  local h = load(KEYS[1])
  refill(h, limits(h, cfg), now, safety, c.burst)
  local calls = redis.call('ZCARD', KEYS[2])
  for k = 0, n - 1 do calls = settle_one(h, cfg, now, 16 + 15 * k, c) end
  -- Little's law sets the window's floor, unless overload is dense or was cut for lately (a cut
  -- holds for two round trips; the window grows back from it as AIMD does, then to the floor).
  local useful = useful_concurrency(h, limits(h, cfg), safety, headroom)
  h.useful = useful
  local latency = num(h.latency, 0)
  if useful > 0 and num(h.ov, 0) <= c.cut_threshold and now - num(h.last_cut, 0) >= 2 * latency then
    h.cwnd = math.max(num(h.cwnd, c.initial_window), useful)
  end
  h.t = now
  save(KEYS[1], h)
  -- Seeded: the state is worth remembering (a hash Redis lost and a settle re-created knows less
  -- than PostgreSQL does, until the next acquire seeds it).
  return {tostring(num(h.cwnd, c.initial_window)), calls, num(h.lim_r, 0), num(h.lim_i, 0),
          num(h.lim_o, 0), tostring(latency), useful, h.seeded == '1' and 1 or 0}
end

-- Release without a call (the call never went out): give the reservation back, nothing learned.
-- ARGV[3] call id, [4] blocks, [5] input tokens, [6] output tokens, [7..10] configured limits,
-- [11] safety, [12] burst seconds.
local function cancel(now)
  local call, nblocks = ARGV[3], tonumber(ARGV[4])
  local reserved = {r = 1, i = tonumber(ARGV[5]), o = tonumber(ARGV[6])}
  local cfg = {r = tonumber(ARGV[7]), i = tonumber(ARGV[8]), o = tonumber(ARGV[9]),
               explicit = ARGV[10] == '1'}
  local safety, burst = tonumber(ARGV[11]), tonumber(ARGV[12])
  local registered = redis.call('ZREM', KEYS[2], call)
  for b = 0, nblocks - 1 do redis.call('ZREM', KEYS[3], call .. ':' .. b) end
  if registered == 0 then return 0 end
  local h = load(KEYS[1])
  local lim = limits(h, cfg)
  refill(h, lim, now, safety, burst)
  for _, d in ipairs(DIMS) do
    if lim[d] > 0 then h['lvl_' .. d] = math.min(size(lim[d], burst), num(h['lvl_' .. d], 0) + reserved[d]) end
  end
  h.res_i = math.max(0, num(h.res_i, 0) - reserved.i)
  h.res_o = math.max(0, num(h.res_o, 0) - reserved.o)
  save(KEYS[1], h)
  return 1
end

local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local op = ARGV[1]
if op == 'acquire' then return acquire(now) end
if op == 'settle' then return settle(now) end
if op == 'cancel' then return cancel(now) end
return redis.error_reply('unknown lane operation ' .. op)
