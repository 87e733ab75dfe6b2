-- Configurations 6 and 7: every request starts a challenge for a new user
-- (an API client: no text/html in Accept, so the answer is a 401 with the
-- challenge as JSON, or a 429 when a limit refuses).
--
-- wrk ... -s challenge.lua URL -- RUN
--   RUN    makes the user names of this run unique ("c-RUN-THREAD-N")
--
-- Each user has a number of their own, as in a sale (+1 415 200-0000
-- and on; all valid), so that no cache of parsed numbers could help.
--
-- The runner appends status.lua, which counts the answers.

local run
local n = 0

function init(args)
  run = args[1] or "0"
end

function request()
  n = n + 1
  return wrk.format("GET", nil, {
    ["X-Remote-User"] = "c-" .. run .. "-" .. tid .. "-" .. n,
    ["X-Remote-Phone"] = string.format("+1415%07d", 2000000 + n % 7000000),
  })
end
