-- After a request: charge the tokens its estimate missed (or refund the surplus) and free its
-- concurrency slots. A port of MemoryStore.settle_at in gateway/ratelimit/memory.py.
--
-- KEYS[i]: the counter of bucket i
-- ARGV[1]: holder   ARGV[2]: token delta   ARGV[3]: release slots (1/0)
-- ARGV[4]: "kind,limit,period_s,is_tokens" per bucket, joined by commas (as in admit.lua)
-- ARGV[5]: window end per bucket, joined by commas

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local holder, delta, release = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local spec, ends = numbers(ARGV[4]), numbers(ARGV[5])

for i = 1, #KEYS do
  local kind, limit, period = spec[4 * i - 3], spec[4 * i - 2], spec[4 * i - 1]
  local is_tokens, wend = spec[4 * i] == 1, ends[i]
  if kind == 3 then
    if release then redis.call('ZREM', KEYS[i], holder) end
  elseif is_tokens and delta ~= 0 then
    if kind == 1 then
      local tat = tonumber(redis.call('GET', KEYS[i])) or 0
      local base = tat > now and tat or now
      local adjusted = base + delta * (period / limit)
      if adjusted > now then
        local ttl_ms = math.ceil((adjusted - now) * 1000) + 1000
        redis.call('SET', KEYS[i], string.format('%.6f', adjusted), 'PX', ttl_ms)
      else
        redis.call('DEL', KEYS[i])
      end
    else
      local used = tonumber(redis.call('INCRBYFLOAT', KEYS[i], delta))
      if used < 0 then redis.call('SET', KEYS[i], '0') end
      redis.call('PEXPIREAT', KEYS[i], math.ceil(wend * 1000) + 3600000)
    end
  end
end
return 1
