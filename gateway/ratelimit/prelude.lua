-- Shared by admit.lua and settle.lua: RedisStore prepends it to each before loading.

-- "1,2.5,3" -> {1, 2.5, 3}
local function numbers(text)
  local out = {}
  for value in string.gmatch(text, '[^,]+') do out[#out + 1] = tonumber(value) end
  return out
end

