"""highdicom's table of the standard's modules, parsed one module at a time.

highdicom (the ``[seg]`` extra, used by :mod:`ichinfer.dicom_out`) parses the whole of its
``_standard/module_attribute_map.json`` (22 MB) into about 60 MiB of Python objects on the first
SEG and keeps them for the life of the process (tracemalloc), to look up the few modules a SEG or
a Secondary Capture copies from its source. :func:`lazy_module_table` points it at a
:class:`ModuleTable` instead.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any


class ModuleTable(Mapping):
    """highdicom's module -> attributes table (``_standard/module_attribute_map.json``), parsed
    one module at a time when asked for. It keeps where each module's entry lies in the text,
    and the text itself only where it cannot read it again from ``path`` (an ASCII file, so
    that characters are bytes); ``tests/test_dicom_out.py`` checks every module against a full
    parse."""

    def __init__(self, text: str, path: str | None = None) -> None:
        self._path = path if path is not None and text.isascii() else None
        self._text = text if self._path is None else None
        self._spans: dict[str, tuple[int, int]] = {}
        self._parsed: dict[str, Any] = {}
        decoder = json.JSONDecoder()
        ws = re.compile(r"[ \t\n\r]*")
        i = ws.match(text, 0).end()
        if text[i] != "{":
            raise ValueError("not a JSON object")
        i = ws.match(text, i + 1).end()
        while text[i] != "}":
            key, i = decoder.raw_decode(text, i)
            i = ws.match(text, i).end()
            if text[i] != ":":
                raise ValueError(f"no ':' after {key!r}")
            start = ws.match(text, i + 1).end()
            _, end = decoder.raw_decode(text, start)  # parsed to find its end, then dropped
            self._spans[key] = (start, end)
            i = ws.match(text, end).end()
            if text[i] == ",":
                i = ws.match(text, i + 1).end()

    def __getitem__(self, key: str) -> Any:
        if key not in self._parsed:
            start, end = self._spans[key]
            if self._text is not None:
                entry = self._text[start:end]
            else:
                with open(self._path, "rb") as f:  # type: ignore[arg-type]
                    f.seek(start)
                    entry = f.read(end - start).decode("ascii")
            self._parsed[key] = json.loads(entry)
        return self._parsed[key]

    def __contains__(self, key: object) -> bool:
        return key in self._spans

    def __iter__(self) -> Iterator[str]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)


_TABLE_LOCK = threading.Lock()
_TABLE: list[ModuleTable] = []


def lazy_module_table() -> None:
    """Point highdicom's ``get_module_attribute_map`` (where its modules imported it) at one
    :class:`ModuleTable`, once. A highdicom without that function, or whose file does not
    parse, is left as it is: only its memory differs."""
    with _TABLE_LOCK:
        if _TABLE:
            return
        import pkgutil
        import sys

        try:
            from highdicom import _standard_utils

            original = _standard_utils.get_module_attribute_map
            raw = pkgutil.get_data("highdicom", "_standard/module_attribute_map.json")
            path = os.path.join(os.path.dirname(_standard_utils.__file__), "_standard",
                                "module_attribute_map.json")
            if not os.path.isfile(path) or os.path.getsize(path) != len(raw):  # type: ignore[arg-type]
                path = None
            table = ModuleTable(raw.decode("utf-8"), path)  # type: ignore[union-attr]
        except (ImportError, AttributeError, OSError, TypeError, ValueError, IndexError):
            return
        _TABLE.append(table)
        for name, module in list(sys.modules.items()):
            if (name == "highdicom" or name.startswith("highdicom.")) and \
                    getattr(module, "get_module_attribute_map", None) is original:
                module.get_module_attribute_map = lambda: table
