-- Configuration 3b: requests to a protected route, each with a valid
-- session grant of another user (API clients: the Stepup-Grant cookie).
-- The runner got the grants before the run and wrote them to a file, one
-- "USER TOKEN" line each; with more users than requests per second, each
-- user comes back less than once a second, as on a real site.
--
-- wrk ... -s grant.lua URL -- FILE PHONE
--
-- The runner appends status.lua, which counts the answers.

local reqs = {}
local i = 0

function init(args)
  local file, phone = args[1], args[2]
  for l in io.lines(file) do
    local user, token = l:match("^(%S+) (%S+)$")
    reqs[#reqs + 1] = wrk.format("GET", nil, {
      ["X-Remote-User"] = user,
      ["X-Remote-Phone"] = phone,
      ["Cookie"] = "Stepup-Grant=" .. token,
    })
  end
  if #reqs == 0 then
    error("grant.lua: no grants in " .. file)
  end
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
