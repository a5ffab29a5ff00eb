"""The planner's Facts now live in :mod:`hostnet.model.facts` (hostnet.observe.plan_facts
reads them). Re-exported here only for hostnet.state.prepare, whose import line moves to
hostnet.model.facts with the next change of that module; import from model/ elsewhere."""

from hostnet.model.facts import Facts, KeyFact, LaterSetting

__all__ = ["Facts", "KeyFact", "LaterSetting"]
