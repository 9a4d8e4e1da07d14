"""Reporting — live figures and scheduled summaries for leaders.

Its parts: ``commands`` (what callers ask), ``handlers`` (the one table of command and
event handlers), ``views`` (reads), ``schemas`` (the HTTP API's types), ``bootstrap``
(builds the bus), the entrypoints ``api`` (+ ``reports_api``), ``tasks``, ``consumers`` and
``cli`` (``servicemonth report``); the topic modules hold the rules and use cases:
``access`` (who reads which scope), ``figures`` (the figures as of any instant),
``replay`` (the read models' rules), ``live`` (the consumer's), ``pseudonyms``,
``event_log`` and ``rebuild`` (the read models), ``snapshots``, ``subscriptions``,
``runs``, ``run_state``, ``builds``, ``on_demand`` and ``downloads`` (scheduled reports),
``contents``, ``render``, ``charts`` and ``spreadsheet`` (what a report says and its files).
"""

from __future__ import annotations

NAME = "reporting"
