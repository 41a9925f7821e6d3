"""One validator for every way a case comes in (CSV, XLSX, the form, JSON): scored as given or refused.

Every value is read with one number grammar (`numbers`), columns are matched by name (`columns`), and each
bad value is reported with its row, column, value and reason; nothing is guessed, imputed or clipped. Each layout
of a stored input has one reader (`readers`): plain CSV (`plain`), other CSV (`csvfile`), XLSX (`xlsxfile`) and
JSON cases (`cases`).
"""

from .batch import Batch, Problem, UploadSummary
from .cases import validate_cases
from .columns import features_in
from .errors import FileRejected, Limits
from .readers import Layout, read_batches, read_rows
from .upload import inspect_upload, iter_batches, read_header, sniff_format

__all__ = [
    "Batch",
    "FileRejected",
    "Layout",
    "Limits",
    "Problem",
    "UploadSummary",
    "features_in",
    "inspect_upload",
    "iter_batches",
    "read_batches",
    "read_header",
    "read_rows",
    "sniff_format",
    "validate_cases",
]
