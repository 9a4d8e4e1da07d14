"""Registration — 双注册: the directory, members and their community registrations, rosters,
staff accounts and sign-in.

Its parts: ``commands`` (what callers ask), ``handlers`` (the one table of command
handlers; registration listens to no event), ``views`` (reads), ``schemas`` (the HTTP
API's types), ``bootstrap`` (builds the bus), the entrypoints ``api`` (+ ``*_api``),
``tasks`` and ``consumers``; the topic modules ``members``, ``registrations``,
``enrolment``, ``rules``, ``rosters``, ``roster_uploads``, ``workbooks``, ``staff``,
``sessions`` and ``directory`` hold the domain rules and use cases.
"""

from __future__ import annotations

NAME = "registration"
