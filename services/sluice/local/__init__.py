"""The whole system on one machine, as local processes: ``sluice up``, ``down``, ``status``
and ``demo``.

- ``plan.py``: pure: which services, in which order, on which ports, with which env.
- ``state.py``: the state folder (``.sluice/stack/``): tokens, the running stack's record.
- ``prepare.py``: the churn data, its features materialised, two trained versions.
- ``stack.py``: process supervision: start in process groups, wait ready, stop, report.
- ``cli.py``: the commands.
- ``demo.py``: ``sluice demo``'s story; ``traffic.py`` its load generator; ``record.py``
  what it samples (``stack/demo.json``); ``report.py`` the HTML report drawn from that.
"""
