"""`reconcile report`: one report from the plan or drift documents of many jobs (a CI matrix).

documents.py   read FILE arguments and globs: plans (digest checked) and drift reports
merge.py       the merged report's records, and the pure merge with its refusals
render.py      the merged report as text, markdown, HTML or JSON
__main__.py    `python -m reconcile.report merge|providers`, a `main(argv) -> int`
"""

from reconcile.report.documents import read_documents
from reconcile.report.merge import MergedDrift, MergedPlan, MergedReport, ReportError, merge
from reconcile.report.render import RENDERERS

__all__ = [
    "RENDERERS",
    "MergedDrift",
    "MergedPlan",
    "MergedReport",
    "ReportError",
    "merge",
    "read_documents",
]
