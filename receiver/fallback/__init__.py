"""The iMessage -> SMS fallback, the whole feature but its handlers and its tables.

policy.py    the rules, each written once (never-resend statuses, the transition table)
outbox.py    leases due resends and sends them through MTA, at most once per original
content.py   what a resend says and whether it may still go out
send.py      our own send path (records text and route for the fallback)
wiring.py    the outbox built from settings

The built-in handlers that schedule, cancel and follow resends are handlers/fallback.py
(the same API a user's handlers get); the tables and their SQL are
receiver/store/resends.py.
"""
