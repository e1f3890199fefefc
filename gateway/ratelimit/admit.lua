-- Admit one request against every bucket that applies to it, all or nothing, in one round trip.
-- A port of gateway/ratelimit/buckets.py (rolling, budget, slots); the store tests hold both
-- to the same behaviour. Time is Redis's own clock, so every gateway replica agrees on it.
--
-- KEYS[i]: the counter of bucket i (budgets carry their calendar window in the key)
-- ARGV[1]: holder (request id, for slots)   ARGV[2]: slot lease in seconds
-- ARGV[3]: "kind,limit,period_s,is_tokens" per bucket, all joined by commas
--          (kind 1 rolling, 2 budget, 3 slots)
-- ARGV[4]: the cost per bucket, joined by commas   ARGV[5]: window end per bucket, likewise
-- returns, per bucket: allowed (0/1), remaining, reset_s, retry_after_s (-1: never fits)

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local holder, lease = ARGV[1], tonumber(ARGV[2])
local spec, costs, ends = numbers(ARGV[3]), numbers(ARGV[4]), numbers(ARGV[5])
local out = {}
local commits = {}
local all_ok = true

for i = 1, #KEYS do
  local kind, limit, period = spec[4 * i - 3], spec[4 * i - 2], spec[4 * i - 1]
  local cost, wend = costs[i], ends[i]
  local ok, remaining, reset, retry = 1, 0, 0, 0
  if kind == 1 then
    local tat = tonumber(redis.call('GET', KEYS[i])) or 0
    local interval = period / limit
    local base = tat > now and tat or now
    local new_tat = base + cost * interval
    local over = new_tat - now - period
    if over > 1e-9 then
      ok, remaining, reset = 0, math.floor((period - (base - now)) / interval + 1e-9), base - now
      retry = cost > limit and -1 or over
    else
      remaining, reset = math.floor((period - (new_tat - now)) / interval + 1e-9), new_tat - now
      commits[i] = new_tat
    end
  elseif kind == 2 then
    local used = tonumber(redis.call('GET', KEYS[i])) or 0
    reset = wend - now
    if used + cost > limit then
      ok, remaining, retry = 0, math.max(0, math.floor(limit - used)), wend - now
    else
      remaining = math.floor(limit - used - cost)
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local held = redis.call('ZCARD', KEYS[i])
    if held >= limit then
      ok, retry = 0, 1
    else
      remaining = limit - held - 1
    end
  end
  if ok == 0 then all_ok = false end
  out[#out + 1] = ok
  out[#out + 1] = remaining
  out[#out + 1] = string.format('%.6f', reset)
  out[#out + 1] = string.format('%.6f', retry)
end

if all_ok then
  for i = 1, #KEYS do
    local kind, cost, wend = spec[4 * i - 3], costs[i], ends[i]
    if kind == 1 then
      local ttl_ms = math.ceil((commits[i] - now) * 1000) + 1000
      redis.call('SET', KEYS[i], string.format('%.6f', commits[i]), 'PX', ttl_ms)
    elseif kind == 2 then
      redis.call('INCRBYFLOAT', KEYS[i], cost)
      redis.call('PEXPIREAT', KEYS[i], math.ceil(wend * 1000) + 3600000)
    else
      redis.call('ZADD', KEYS[i], now + lease, holder)
      redis.call('PEXPIRE', KEYS[i], math.ceil(lease * 1000))
    end
  end
end
return out
