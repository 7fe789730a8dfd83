-- wrk script: POST one Keycloak-shaped message per request, as Keycloak's
-- extension does: template + data + the subject/text/html Keycloak rendered
-- (bench/keycloak-request.json, about 4 KB), with a fresh idempotency key
-- each time (the same key twice would be answered as a repeat, storing nothing).
-- BODY_FILE names another body; its "__KEY__" is replaced the same way.
local path = os.getenv("BODY_FILE") or "bench/keycloak-request.json"
local file = assert(io.open(path, "r"))
local template = file:read("*a"):gsub("%s+$", "")
file:close()
local before, after = template:match("^(.*)__KEY__(.*)$")
if not before then
  before, after = template, nil
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
  if not after then
    return wrk.format(nil, nil, nil, before)
  end
  counter = counter + 1
  return wrk.format(nil, nil, nil, before .. prefix .. counter .. after)
end
