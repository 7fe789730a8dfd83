-- wrk script: POST one Keycloak-shaped message per request, as Keycloak's
-- extension does: template + data + the subject/text/html Keycloak rendered
-- (bench/keycloak-request.json, about 4 KB), with a fresh idempotency key
-- each time (the same key twice would be answered as a repeat, storing nothing).
-- BODY_FILE names another body; every "__KEY__" in it is replaced the same
-- way (with LIMITS=1, bench/run.sh puts one in the address as well).
local path = os.getenv("BODY_FILE") or "bench/keycloak-request.json"
local file = assert(io.open(path, "r"))
local template = file:read("*a"):gsub("%s+$", "")
file:close()
local parts = {}
for part in (template .. "__KEY__"):gmatch("(.-)__KEY__") do
  parts[#parts + 1] = part
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter, prefix = 0, "kc-"
-- Several runs against one store must not repeat keys either.
function init(args)
  prefix = string.format("kc-%d-%d-", thread_id or 0, os.time())
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("MB_TOKEN") or "")

function request()
  if #parts == 1 then
    return wrk.format(nil, nil, nil, parts[1])
  end
  counter = counter + 1
  return wrk.format(nil, nil, nil, table.concat(parts, prefix .. counter))
end
