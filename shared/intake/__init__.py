"""One validator for every way a case comes in (CSV, XLSX, the form, JSON): scored as given or refused.

Every value is read with one number grammar (`numbers`), columns are matched by name (`columns`), and each
bad value is reported with its row, column, value and reason; nothing is guessed, imputed or clipped.
"""

from .batch import Batch, Problem, UploadSummary
from .cases import validate_cases
from .errors import FileRejected, Limits
from .exports import neutralise, template_csv, template_xlsx, write_csv, write_xlsx
from .upload import inspect_upload, iter_batches, read_source_rows, sniff_format

__all__ = [
    "Batch",
    "FileRejected",
    "Limits",
    "Problem",
    "UploadSummary",
    "inspect_upload",
    "iter_batches",
    "neutralise",
    "read_source_rows",
    "sniff_format",
    "template_csv",
    "template_xlsx",
    "validate_cases",
    "write_csv",
    "write_xlsx",
]
