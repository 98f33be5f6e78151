-- POST /api/votes/ with a new opaque voter key on every request (run prefix, thread, counter),
-- so each request is a counted ballot, never a 409.
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  counter = 0
  prefix = os.getenv("CT_RUN") .. "-" .. thread_id .. "-"
  body_head = '{"poll": "' .. os.getenv("CT_POLL") .. '", "choices": [' .. os.getenv("CT_CHOICE") .. '], "voter": "'
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, headers, body_head .. prefix .. counter .. '"}')
end
