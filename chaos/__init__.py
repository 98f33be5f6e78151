"""`make chaos`: the stack under faults (a process killed, Redis lost, PostgreSQL frozen), every vote checked.

Like loadtest/, this package talks to the site over HTTP, WebSockets and SQL only; it never imports the app.
"""
