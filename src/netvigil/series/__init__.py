"""Series import: parse user files (CSV, IODA JSON) into points and write them to the store."""

from netvigil.series.importers import FORMATS, ImportSummary, detect_format, import_file

__all__ = ["FORMATS", "ImportSummary", "detect_format", "import_file"]
