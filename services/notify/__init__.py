"""Notify — the month's SMS and e-mail, each sent once.

Its parts: ``commands`` (what callers ask), ``handlers`` (the one table of command and event
handlers), ``views`` (reads), ``schemas`` (the HTTP API's types), ``bootstrap`` (builds the
bus: providers, dispatch), the entrypoints ``api``, ``tasks``, ``consumers`` and ``cli``;
the topic modules hold the rules and use cases: ``policy`` (what to do with a message now,
pure) and ``sending`` (which carries it out), ``bulk`` and ``messages`` (queueing),
``reminders`` and ``calendar``, ``triggers`` and ``sign_in`` (messages events cause),
``contacts``, ``progress``, ``receipts``, ``history``, ``access``, ``rendering``, ``mail``.
"""

from __future__ import annotations

NAME = "notify"
