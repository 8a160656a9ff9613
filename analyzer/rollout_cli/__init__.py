"""The operator's rollout commands: ``analyzer get rollout``, ``list rollouts``, ``status``,
``promote``, ``abort``, ``retry``, ``pause``, ``resume`` (``commands``), their kubectl-style
connection options (``connect``) and how a rollout is shown (``view``)."""
