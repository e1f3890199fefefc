-- After a request: charge the tokens its estimate missed (or refund the surplus) and free its
-- concurrency slots. A port of MemoryStore.settle_at in gateway/ratelimit/memory.py.
--
-- KEYS[i]: the counter of bucket i
-- ARGV[1]: holder   ARGV[2]: token delta   ARGV[3]: release slots (1/0)
-- ARGV[4 + 5(i-1) ...]: kind (1 rolling, 2 budget, 3 slots), limit, period_s, is_tokens (1/0), window_end

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local holder, delta, release = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'

for i = 1, #KEYS do
  local a = 4 + (i - 1) * 5
  local kind, limit = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local period, is_tokens, wend = tonumber(ARGV[a + 2]), ARGV[a + 3] == '1', tonumber(ARGV[a + 4])
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
