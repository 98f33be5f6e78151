-- The HTML form vote as HTMX sends it: CSRF cookie and field, HX-Request, and no voter
-- cookie, so the server mints a new voter for every request and each one is a counted ballot.
local token = os.getenv("CT_CSRF")
wrk.method = "POST"
wrk.body = "csrfmiddlewaretoken=" .. token .. "&choice=" .. os.getenv("CT_CHOICE")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "csrftoken=" .. token
wrk.headers["HX-Request"] = "true"
wrk.headers["HX-Target"] = "poll-body"
