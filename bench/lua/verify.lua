-- Configuration 6, verification: each request verifies one challenge
-- through the API (POST {prefix}/verify, JSON), with the right code, as
-- the user it belongs to. The runner made the challenges before the run
-- and wrote them to a file, one "USER CHALLENGE CODE" line each.
--
-- wrk ... -s verify.lua URL -- FILE PHONE PATH
--
-- Thread i of n takes the lines i, i+n, ... When a thread has used all
-- of its lines it starts again from its first, and the answers become
-- 410 (already used), which the runner reports as a failed run: the
-- runner makes more challenges than the run can verify.
--
-- The runner appends status.lua, which counts the answers.

local reqs = {}
local i = 0

function init(args)
  local file, phone, path = args[1], args[2], args[3]
  local nthreads = tonumber(args[4] or "1")
  local line = 0
  for l in io.lines(file) do
    line = line + 1
    if (line - 1) % nthreads == tid - 1 then
      local user, id, code = l:match("^(%S+) (%S+) (%S+)$")
      reqs[#reqs + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/json",
        ["X-Remote-User"] = user,
        ["X-Remote-Phone"] = phone,
      }, '{"challenge":"' .. id .. '","code":"' .. code .. '"}')
    end
  end
  if #reqs == 0 then
    error("verify.lua: no challenges in " .. file)
  end
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
