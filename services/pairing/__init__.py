"""Pairing — 双对接: needs, projects, pairings, micro-wishes and the five ones.

Its parts: ``commands`` (what callers ask), ``handlers`` (the one table of command and event
handlers), ``views`` (reads), ``schemas`` (the HTTP API's types), ``bootstrap`` (builds the
bus), the entrypoints ``api`` (+ ``*_api``), ``tasks`` and ``consumers``; the topic modules
``needs``, ``pairings``, ``engine``, ``report``, ``wishes``, ``activities``, ``teams`` and
``access`` hold the domain rules and use cases.
"""

from __future__ import annotations

NAME = "pairing"
