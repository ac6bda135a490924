"""The one number formatter of the printed tables and the report: ``-`` for a missing value, words for a
boolean (``pass``/``FAIL`` by default), ``nan`` for NaN, a number with a fixed count of decimals (4 by
default), anything else as ``str``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def format_number(value: Any, digits: int = 4, booleans: tuple[str, str] = ("pass", "FAIL")) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return booleans[0] if value else booleans[1]
    if isinstance(value, (int, float, np.floating)):
        return "nan" if math.isnan(float(value)) else f"{float(value):.{digits}f}"
    return str(value)
