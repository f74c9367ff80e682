-- Cycles pre-minted tokens (one per line in $HALO_BENCH_TOKENS): a different token on every
-- request. Requests are formatted once in init() so wrk's per-request cost stays small.
local reqs = {}
local i = 0

init = function(args)
  local path = os.getenv("HALO_BENCH_TOKENS")
  for line in io.lines(path) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. line })
    end
  end
  -- Each wrk thread has its own Lua state; start them at different offsets.
  math.randomseed(os.time() + tonumber(tostring(reqs):match("0x(%x+)") or "0", 16) % 1000)
  i = math.random(#reqs)
end

request = function()
  i = i % #reqs + 1
  return reqs[i]
end

dofile(os.getenv("HALO_BENCH_DIR") .. "/report.lua")
