"""Detector state as bytes and back, without pickle: an explicit, versioned codec.

A ``DetectorBank`` (or any object graph of the allowed classes) is written as
plain data: numbers, strings, containers, numeric arrays, and objects as
(class, named fields). Decoding creates only instances of allowed classes
(``object.__new__`` and field assignment, or an adapter below) and calls no
function named by the data, so bytes read from a topic or a file cannot run
code. Anything the encoder does not know raises ``CodecError`` when it is
*written* (a new detector class without support fails the unit tests, not a
restore in production).

>>> from detectors.bank import DetectorBank, EventBatch
>>> bank = DetectorBank()
>>> batch = EventBatch()
>>> for i in range(1200):
...     batch.append("m", None, {"x": float(i % 7), "c": "abc"[i % 3]}, None, i)
>>> _ = bank.update(batch)
>>> data = encode(bank)
>>> copy = decode(data, DetectorBank)
>>> encode(copy) == data
True
>>> decode(data[:-3], DetectorBank)
Traceback (most recent call last):
...
detectors.codec.CodecError: truncated: ...

Format (version 5)
------------------

``payload = MAGIC "SDDC" | item*`` where each item is one MessagePack value
(https://github.com/msgpack/msgpack/blob/master/spec.md), in this order:

1. header, a map: ``{"version": 5, "fingerprint": str}``. ``fingerprint`` identifies
   the code that wrote it (``fingerprint()``: this format version, river's version, the
   allowed class names and a hash of the source of every ``detectors`` module); a
   payload written by other code is refused (reason ``format``).
2. object entries, ``[shape, [value, ...]]``, one value per field of the shape, in the
   order of the shape's fields. A shape is one allowed class (its ``module.qualname``)
   with the ordered names of the fields its objects carry: the first entry of a shape
   gives it whole, ``[class, [field, ...]]``, and so numbers it (0, 1, ... in the order
   they come); later entries give that number. Objects are listed children first: a
   reference (below) points to an earlier entry only.
3. the root, ``[nil, value]`` (for a bank: a reference to its entry), then nothing.

Every entry is final once written, so ``encode_to`` hands the payload on in pieces as
it walks the objects, and ``decode_from`` builds each object as soon as its entry is
read: a snapshot compresses the pieces as they come, a restore decodes as it
decompresses, and neither holds a bank's uncompressed payload whole (version 4 put
every shape in the header, known only at the end of the walk).

Values are MessagePack nil, bool, int (64-bit), float (64-bit), str, bin, array
(a Python list) and map (a dict; any key below), plus these extension types:

=====  ==============  ====================================================================
code   Python          payload (itself MessagePack)
=====  ==============  ====================================================================
1      tuple           array of values
2      set             array of values
3      frozenset       array of values
4      OrderedDict     map
5      deque           ``[maxlen or nil, array of values]``
6      numpy array     ``[dtype, shape, bin]``: dtype one of ``DTYPES`` (little-endian),
                       shape an array of ints whose product times the item size is the
                       length of bin (C order); or ``[dtype, shape, bin, stored]``, the
                       items held narrower: ``stored`` a smaller integer dtype of
                       ``DTYPES`` for an integer array (every value fits it), or ``"bits"``
                       for a bool array (``numpy.packbits``, little bit order), or
                       ``"shuffle"`` for a float array of 64 items or more: bin holds
                       every item's first byte, then every item's second, ...
7      numpy scalar    ``[dtype, bin]`` (one item)
8      reference       uint: the index of an object entry
9      bound method    ``[uint, name]``: method ``name`` of that object entry
10     own method      ``name``: a method of the object whose field holds it (set last)
=====  ==============  ====================================================================

Objects are encoded by their class's kind:

- plain classes: every set ``__slots__`` entry (over the MRO) then ``__dict__``. A class
  whose own ``__getstate__`` returns a dict of str keys is encoded as that dict (and
  decoded through its own ``__setstate__``, if it has one); a class with its own
  ``__reduce__`` and no adapter is refused.
- adapters (``_ADAPTERS``): pydantic models (fields validated again on decode with
  ``model_validate``), river's compiled ADWIN core (one field, ``state``: its
  ``__getstate__`` bytes as they are, their layout and every field checked on decode,
  ``_adwin_layout``, before they are handed back to the compiled code; our ``Adwin``,
  which wraps one, is stored as that core alone), river's exponentially weighted mean
  (its state bytes as named fields, checked on decode), and ``ReferenceFile`` (its path
  and digest: the file is read again and must not have changed).

Allowed classes (``allowed_classes()``): those defined in the ``detectors`` modules
(found by walking the package, exceptions excepted), and the river classes a bank
holds (``_RIVER``). A mutable container reached twice, a reference cycle (other than a
bound method of the object itself), an int beyond 64 bits, a str that is not UTF-8, an
array of another dtype, or a value of any other type cannot be encoded.

Errors: ``CodecError`` with ``reason`` one of ``format`` (magic, version,
fingerprint), ``truncated``, ``corrupt`` (not MessagePack, trailing bytes),
``schema`` (a class or field not expected, a bad array, an adapter's state out of
range), ``config`` (the reference file changed or cannot be read) and, on encode,
``unsupported``. Decoding raises nothing else, whatever the bytes.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import importlib
import inspect
import io
import math
import operator
import pkgutil
import struct
import sys
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import msgpack
import numpy as np
import river
from pydantic import BaseModel, ValidationError
from river import drift, stats
from river.drift.binary import DDM, EDDM, HDDMA, HDDMW
from river.drift.binary.hddm_w import SampleInfo

import detectors
from detectors.reference_file import ReferenceFileError, load_reference_file

FORMAT_VERSION = 5  # 2: narrowed integer and bool arrays; 3: ADWIN cores as their bytes;
# 4: float arrays byte-shuffled; 5: shapes given by their first entry (written in pieces)
MAGIC = b"SDDC"
#: Array dtypes a payload may hold (little-endian), by their ``dtype.str``.
DTYPES = frozenset({"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2",
                    "<f4", "<f8"})
MAX_DEPTH = 64  # nested containers in one value; a bank needs a handful
MAX_NDIM = 8

T = TypeVar("T")

_TUPLE, _SET, _FROZENSET, _ORDERED, _DEQUE, _ARRAY, _SCALAR, _REF, _METHOD, _OWN = range(1, 11)
_PLAIN = (type(None), bool, int, float, str, bytes)
_PLAIN_SET = frozenset(_PLAIN)
_CONTAINERS = (list, dict, set, frozenset, tuple, deque, OrderedDict)


class CodecError(ValueError):
    """State that cannot be encoded or decoded; ``reason`` says which kind of problem."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


# --- allowed classes ------------------------------------------------------------------

#: river's compiled ADWIN core (``drift.ADWIN()._helper``: Rust, no importable name).
_ADWIN_CORE: type = type(drift.ADWIN()._helper)  # type: ignore[no-untyped-call]


def _river_classes() -> list[type]:
    ewmean = type(stats.EWMean()._ewmean)
    return [drift.ADWIN, drift.PageHinkley, DDM, EDDM, HDDMA, HDDMW, SampleInfo, stats.Mean,
            stats.Var, stats.EWMean, _ADWIN_CORE, ewmean]


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_ADWIN_CORE_NAME = _name(_ADWIN_CORE)


_allowed: dict[str, type] | None = None
_fingerprint: str | None = None


def _module_names(path: Any) -> list[str]:
    """Every module of the detectors package, subpackages (``detectors.stats``) included."""
    return sorted(info.name for info in pkgutil.walk_packages(path, prefix="detectors."))


def allowed_classes() -> dict[str, type]:
    """``module.qualname`` -> class, for every class a payload may hold."""
    global _allowed
    if _allowed is None:
        found: dict[str, type] = {}
        for name in _module_names(detectors.__path__):
            module = importlib.import_module(name)
            if module.__name__ == __name__:
                continue
            for value in vars(module).values():
                if (isinstance(value, type) and value.__module__ == module.__name__
                        and not issubclass(value, BaseException)):
                    found[_name(value)] = value
        for cls in _river_classes():
            found[_name(cls)] = cls
        _allowed = found
    return _allowed


def fingerprint() -> str:
    """sha256 (hex) of what decides how objects are laid out: this format's version,
    river's version, the allowed class names and the source of every detectors module."""
    global _fingerprint
    if _fingerprint is None:
        version = getattr(river, "__version__", "?")
        h = hashlib.sha256(f"streamdrift-codec {FORMAT_VERSION} river {version}\n".encode())
        for name in sorted(allowed_classes()):
            h.update(name.encode() + b"\n")
        for name in _module_names(detectors.__path__):
            module = importlib.import_module(name)
            source = inspect.getsource(module).encode()
            h.update(f"{module.__name__} {hashlib.sha256(source).hexdigest()}\n".encode())
        _fingerprint = h.hexdigest()
    return _fingerprint


# --- adapters -------------------------------------------------------------------------

class _Adapter:
    """How one class is taken apart into named fields and put together again."""

    def fields(self, obj: Any) -> tuple[tuple[str, ...], list[Any]]:
        raise NotImplementedError

    def build(self, cls: type, values: dict[str, Any]) -> Any:
        raise NotImplementedError


class _PydanticModel(_Adapter):
    """Model fields, and the names of the fields that were set; decoded with
    ``model_validate`` so every constraint of the model holds again."""

    def fields(self, obj: Any) -> tuple[tuple[str, ...], list[Any]]:
        if obj.__pydantic_extra__ or obj.__pydantic_private__:
            raise CodecError("unsupported", f"{_name(type(obj))}: extra or private fields")
        names = tuple(type(obj).model_fields)
        values = [obj.__dict__[n] for n in names]
        return (*names, "__fields_set__"), [*values, sorted(obj.__pydantic_fields_set__)]

    def build(self, cls: type, values: dict[str, Any]) -> Any:
        assert issubclass(cls, BaseModel)
        if set(values) != {*cls.model_fields, "__fields_set__"}:
            raise CodecError("schema", f"{_name(cls)}: fields {sorted(values)}")
        fields_set = values.pop("__fields_set__")
        if not (isinstance(fields_set, list)
                and all(isinstance(n, str) and n in cls.model_fields for n in fields_set)):
            raise CodecError("schema", f"{_name(cls)}: bad set fields")
        try:
            model = cls.model_validate(values)
        except ValidationError as exc:
            raise CodecError("schema", f"{_name(cls)}: {exc.error_count()} invalid field(s): "
                             f"{exc.errors()[0]['msg']}") from None
        object.__setattr__(model, "__pydantic_fields_set__", set(fields_set))
        return model


class _ReferenceFile(_Adapter):
    """A reference file is its path and the digest of its content (not its values)."""

    def fields(self, obj: Any) -> tuple[tuple[str, ...], list[Any]]:
        return ("path", "digest"), [obj.path, obj.digest]

    def build(self, cls: type, values: dict[str, Any]) -> Any:
        path, digest = values.get("path"), values.get("digest")
        if not (isinstance(path, str) and isinstance(digest, str) and len(values) == 2):
            raise CodecError("schema", "ReferenceFile: expected a str path and digest")
        try:
            return load_reference_file(path, digest)
        except ReferenceFileError as exc:
            raise CodecError("config", str(exc)) from None


def _rust_call(what: str, call: Callable[[], Any]) -> Any:
    """A call into compiled code: a Rust panic is a BaseException, not an Exception."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        raise CodecError("schema", f"{what}: refused by river: {type(exc).__name__}") from None


# AdaptiveWindowing (river rust_src/adwin.rs) then the binding's constructor arguments.
_ADWIN_HEAD = ("delta", "clock", "max_buckets", "min_window_length", "grace_period", "total",
               "variance", "width", "total_width", "n_buckets", "max_n_buckets", "tick",
               "n_detections")
_ADWIN_HEAD_FMT = struct.Struct("<diQddddddiiiiQ")  # the head, then the number of rows
_ADWIN_ARGS = ("arg_delta", "arg_clock", "arg_max_buckets", "arg_min_window_length",
               "arg_grace_period")
_ADWIN_ARGS_FMT = struct.Struct("<diQii")
_MAX_BUCKETS_AT = _ADWIN_HEAD.index("max_buckets")
_WIDTH_AT = _ADWIN_HEAD.index("width")
_COUNTERS_AT = _ADWIN_HEAD.index("n_buckets")  # the head's i32 counters, to its end
_MAX_BUCKET_ROWS = 64  # a bucket row holds 2^row values: row 64 would overflow the core
_MAX_BUCKETS = 1000  # river's default is 5
_ADWIN_FIELDS = (*_ADWIN_HEAD, "currents", "totals", "variances", *_ADWIN_ARGS)
_ROW_DTYPES: dict[int, np.dtype[Any]] = {}


def _row_dtype(size: int) -> np.dtype[Any]:
    """One bucket row of river's AdaptiveWindowing, bincode (little-endian, u64 lengths):
    ``max_size, current_idx, len, totals[len], len, variances[len]``."""
    found = _ROW_DTYPES.get(size)
    if found is None:
        found = _ROW_DTYPES[size] = np.dtype([
            ("max_size", "<u8"), ("current", "<u8"), ("n_totals", "<u8"),
            ("totals", "<f8", (size,)), ("n_variances", "<u8"), ("variances", "<f8", (size,))])
    return found


def _adwin_layout(raw: bytes, reason: str = "schema"
                  ) -> tuple[tuple[Any, ...], list[int], tuple[Any, ...], int]:
    """The bincode of river's compiled ADWIN core, its layout checked (``adwin_fields``):
    the 13 scalars of its head, each bucket row's current size, the constructor's
    arguments, and where the rows start. The rows' sums are not read (what a decode
    needs: the bytes themselves go to ``__setstate__``)."""
    if type(raw) is not bytes or len(raw) < _ADWIN_HEAD_FMT.size + _ADWIN_ARGS_FMT.size:
        raise CodecError(reason, "AdaptiveWindowing: state shorter than its layout")
    *head, rows = _ADWIN_HEAD_FMT.unpack_from(raw)
    buckets = head[_MAX_BUCKETS_AT]
    if not 1 <= buckets <= _MAX_BUCKETS or rows > _MAX_BUCKET_ROWS:
        raise CodecError(reason, "AdaptiveWindowing: a field is out of range")
    size = buckets + 1
    words = 4 + 2 * size  # max_size, current, size, totals[size], size, variances[size]
    start = _ADWIN_HEAD_FMT.size
    end = start + rows * words * 8
    if end + _ADWIN_ARGS_FMT.size != len(raw):
        raise CodecError(reason, "AdaptiveWindowing: state of another layout (river's "
                         "state layout changed?)")
    # Each row's words that are not sums, all rows at once (the sums skipped as padding).
    marks = _row_marks(size, rows).unpack_from(raw, start)
    if (marks[0::4].count(buckets) != rows or marks[2::4].count(size) != rows
            or marks[3::4].count(size) != rows):
        raise CodecError(reason, "AdaptiveWindowing: bad bucket rows")
    return tuple(head), list(marks[1::4]), _ADWIN_ARGS_FMT.unpack_from(raw, end), start


_ROW_MARKS: dict[tuple[int, int], struct.Struct] = {}


def _row_marks(size: int, rows: int) -> struct.Struct:
    """``rows`` bucket rows of ``size`` columns read as their max_size, current_idx and two
    lengths, the totals and variances skipped; made once (at most 256 kept)."""
    found = _ROW_MARKS.get((size, rows))
    if found is None:
        if len(_ROW_MARKS) >= 256:
            _ROW_MARKS.clear()
        found = _ROW_MARKS[size, rows] = struct.Struct("<" + f"3Q{8 * size}xQ{8 * size}x" * rows)
    return found


def adwin_fields(raw: bytes, reason: str = "schema") -> dict[str, Any]:
    """The named fields of river's compiled ADWIN core from its ``__getstate__`` bytes: the
    bincode of ``AdaptiveWindowing`` (river 0.26 ``rust_src/adwin.rs``: 13 scalars, then
    rows of buckets ``[max_size, current_idx, totals, variances]``) and the constructor's
    arguments. The rows come as the list of their current sizes and two arrays of
    ``max_buckets + 1`` columns. Every byte is accounted for: ``CodecError`` (``reason``)
    for bytes of any other length or row layout, or more than 1,000 buckets a row."""
    head, currents, args, start = _adwin_layout(raw, reason)
    v = dict(zip(_ADWIN_HEAD, head, strict=True))
    table = np.frombuffer(raw, _row_dtype(v["max_buckets"] + 1), len(currents), start)
    v["currents"] = currents
    v["totals"], v["variances"] = table["totals"].copy(), table["variances"].copy()
    v.update(zip(_ADWIN_ARGS, args, strict=True))
    return v


def adwin_bytes(v: dict[str, Any]) -> bytes:
    """``adwin_fields`` the other way round: the bytes ``__setstate__`` reads.
    ``CodecError`` (``schema``) for a value its layout cannot hold."""
    size = v["max_buckets"] + 1
    table = np.zeros(len(v["currents"]), _row_dtype(size))
    table["max_size"] = size - 1
    table["current"] = v["currents"]
    table["n_totals"] = table["n_variances"] = size
    table["totals"], table["variances"] = v["totals"], v["variances"]
    try:
        return b"".join((_ADWIN_HEAD_FMT.pack(*(v[n] for n in _ADWIN_HEAD), table.size),
                         table.tobytes(), _ADWIN_ARGS_FMT.pack(*(v[n] for n in _ADWIN_ARGS))))
    except struct.error as exc:
        raise CodecError("schema", f"river state field out of range: {exc}") from None


class _AdaptiveWindowing(_Adapter):
    """river's compiled ADWIN core (``drift.ADWIN(...)._helper``, Rust, river 0.26).

    Stored as its ``__getstate__`` bytes (one field, ``state``): a snapshot takes them as
    they are. On decode they are parsed into named fields (``adwin_fields``, every byte
    accounted for) and every field is checked (types, ranges, and that the rows add up to
    the window's width) before the bytes go to ``__setstate__``, so the compiled code only
    ever reads a state it could have made. The first core a process encodes is parsed
    too: a river whose layout changed is refused before a snapshot is written.
    """

    verified = False

    def fields(self, obj: Any) -> tuple[tuple[str, ...], list[Any]]:
        raw = obj.__getstate__()
        if not self.verified:  # the layout is the library's: checking one core is enough
            if adwin_bytes(adwin_fields(raw, "unsupported")) != raw:
                raise CodecError("unsupported", "AdaptiveWindowing: river's state layout "
                                 "changed (detectors/codec.py must follow it)")
            self.verified = True
        return ("state",), [raw]

    def build(self, cls: type, values: dict[str, Any]) -> Any:
        if set(values) != {"state"}:
            raise CodecError("schema", "AdaptiveWindowing: fields differ")
        raw = values["state"]
        head, currents, args, _ = _adwin_layout(raw)
        delta, clock, max_buckets, *_ = head
        # i32 counters: the head's clock, n_buckets, max_n_buckets, tick, n_detections and
        # the arguments' clock, max_buckets, min_window_length, grace_period.
        ints = (clock, *head[_COUNTERS_AT:], *args[1:])
        ok = (0.0 < delta < 1.0 and 0 < clock < 2**31 and len(currents) >= 1
              and -(2**31) <= min(ints) <= max(ints) < 2**31)
        if not ok:
            raise CodecError("schema", "AdaptiveWindowing: a field is out of range")
        if not 0 <= min(currents) <= max(currents) <= max_buckets:
            raise CodecError("schema", "AdaptiveWindowing: bad bucket rows")
        width = sum(current << row for row, current in enumerate(currents))
        if float(width) != head[_WIDTH_AT] or (currents[-1] == 0 and len(currents) > 1):
            raise CodecError("schema", "AdaptiveWindowing: buckets do not add up to its width")
        core = _rust_call("AdaptiveWindowing", lambda: cls(*args))
        _rust_call("AdaptiveWindowing", lambda: core.__setstate__(raw))
        return core


class _Adwin(_Adapter):
    """``detectors.monitors.Adwin``: its river core alone (``_AdaptiveWindowing``'s one
    field, ``state``), one object where the wrapper and its core were two (a numeric
    series holds three; encoding and decoding cost per object)."""

    def fields(self, obj: Any) -> tuple[tuple[str, ...], list[Any]]:
        return _ADAPTERS[_ADWIN_CORE_NAME].fields(obj._core)

    def build(self, cls: type, values: dict[str, Any]) -> Any:
        core = _ADAPTERS[_ADWIN_CORE_NAME].build(_ADWIN_CORE, values)
        adwin: Any = object.__new__(cls)
        adwin.__setstate__({"_core": core})
        return adwin


_EWMEAN = ("mean", "alpha", "one_minus_alpha", "initialized", "arg_alpha")
_EWMEAN_FMT = "ddd?d"


class _RsEWMean(_Adapter):
    """river's compiled exponentially weighted mean (``stats.EWMean()._ewmean``): the
    bincode of ``EWMean`` (river ``rust_src/ewmean.rs``) and its constructor's alpha."""

    def fields(self, obj: Any) -> tuple[tuple[str, ...], list[Any]]:
        raw = obj.__getstate__()
        if len(raw) != struct.calcsize("<" + _EWMEAN_FMT):
            raise CodecError("unsupported", "RsEWMean: river's state layout changed")
        return _EWMEAN, list(struct.unpack("<" + _EWMEAN_FMT, raw))

    def build(self, cls: type, values: dict[str, Any]) -> Any:
        if set(values) != set(_EWMEAN) or type(values["initialized"]) is not bool or not all(
                type(values[n]) is float for n in _EWMEAN if n != "initialized"):
            raise CodecError("schema", "RsEWMean: fields differ")
        data = struct.pack("<" + _EWMEAN_FMT, *(values[n] for n in _EWMEAN))
        alpha = values["arg_alpha"]
        core = _rust_call("RsEWMean", lambda: cls(alpha))
        _rust_call("RsEWMean", lambda: core.__setstate__(data))
        return core


def _adapter(cls: type) -> _Adapter | None:
    if issubclass(cls, BaseModel):
        return _PYDANTIC
    return _ADAPTERS.get(_name(cls))


_PYDANTIC = _PydanticModel()
#: Classes that are not taken apart field by field (``module.qualname`` -> adapter).
_ADAPTERS: dict[str, _Adapter] = {
    "detectors.reference_file.ReferenceFile": _ReferenceFile(),
    "detectors.monitors.Adwin": _Adwin(),
    _ADWIN_CORE_NAME: _AdaptiveWindowing(),
    "river._river_rust.stats.RsEWMean": _RsEWMean(),
}

_DATACLASS_GETSTATE = getattr(dataclasses, "_dataclass_getstate", None)


def _own(cls: type, name: str) -> bool:
    """Does ``cls`` define ``name`` itself (not ``object``, not a dataclass default)?"""
    method = getattr(cls, name, None)
    generated = method is _DATACLASS_GETSTATE or getattr(
        method, "__qualname__", "") == "_dataclass_getstate"  # slots=True dataclasses get one
    return method is not None and method is not getattr(object, name, None) and not (
        name == "__getstate__" and generated)


def _slots(cls: type) -> list[str]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        declared = klass.__dict__.get("__slots__", ())
        for slot in [declared] if isinstance(declared, str) else declared:
            if slot in ("__dict__", "__weakref__"):
                continue
            if slot.startswith("__") and not slot.endswith("__"):
                slot = f"_{klass.__name__.lstrip('_')}{slot}"  # name mangling
            if slot not in names:
                names.append(slot)
    return names


_PLAIN_CLASSES: dict[type, tuple[bool, bool, list[str], frozenset[str]]] = {}


def _plain_class(cls: type) -> tuple[bool, bool, list[str], frozenset[str]]:
    """Own ``__reduce__``?, own ``__getstate__``?, slots, and the names of the class's data
    descriptors (properties: ``getattr`` would not read the instance's dict): once per
    class."""
    found = _PLAIN_CLASSES.get(cls)
    if found is None:
        descriptors = frozenset(
            name for klass in cls.__mro__ for name, attr in vars(klass).items()
            if hasattr(type(attr), "__set__") or hasattr(type(attr), "__delete__"))
        found = _PLAIN_CLASSES[cls] = (_own(cls, "__reduce__") or _own(cls, "__reduce_ex__"),
                                       _own(cls, "__getstate__"), _slots(cls), descriptors)
    return found


_VALID_FIELDS: set[str] = set()  # names _valid_field accepted (a bank has a few hundred)


def _valid_field(name: object) -> bool:
    if name in _VALID_FIELDS:
        return True
    ok = isinstance(name, str) and name.isidentifier() and not (
        name.startswith("__") and name.endswith("__"))
    if ok and len(_VALID_FIELDS) < 100_000:
        _VALID_FIELDS.add(name)  # type: ignore[arg-type]
    return ok


def _at(where: str | tuple[type, str]) -> str:
    """Where a value sits, for an error message: built only when one is raised."""
    return where if isinstance(where, str) else f"{where[0].__qualname__}.{where[1]}"


# --- encoding -------------------------------------------------------------------------

class _Encoder:
    def __init__(self, write: Callable[[bytes], object], piece_bytes: int) -> None:
        self.allowed = {cls: name for name, cls in allowed_classes().items()}
        self.shapes: dict[tuple[str, tuple[str, ...]], int] = {}
        self.objects = 0
        self.write, self.piece_bytes = write, piece_bytes
        self.piece: list[bytes] = []  # items not yet handed to ``write``, and their bytes
        self.held = 0
        self.index: dict[int, int] = {}  # id(object) -> entry
        self.busy: set[int] = set()  # objects whose fields are being encoded
        self.seen: set[int] = set()  # mutable containers already written
        self.alive: list[Any] = []  # keeps every id above valid while encoding
        self.packer = msgpack.Packer(use_bin_type=True, strict_types=True)

    def emit(self, item: bytes) -> None:
        self.piece.append(item)
        self.held += len(item)
        if self.held >= self.piece_bytes:
            self.flush()

    def flush(self) -> None:
        if self.piece:
            piece = b"".join(self.piece)
            self.piece, self.held = [], 0
            self.write(piece)

    def pack(self, value: Any) -> bytes:
        try:
            return self.packer.pack(value)  # type: ignore[no-any-return]
        except (OverflowError, ValueError, TypeError) as exc:
            raise CodecError("unsupported", f"{type(exc).__name__}: {exc}") from None

    def ext(self, code: int, value: Any) -> msgpack.ExtType:
        # ExtType's own __new__ only re-checks the two types: a fifth of encoding time.
        return tuple.__new__(msgpack.ExtType, (code, self.pack(value)))

    def mutable(self, value: Any, where: str | tuple[type, str]) -> None:
        if id(value) in self.seen:
            raise CodecError("unsupported", f"{_at(where)}: a {type(value).__name__} reached twice "
                             "(shared mutable containers are not supported)")
        self.seen.add(id(value))
        self.alive.append(value)

    def value(self, v: Any, where: str | tuple[type, str], depth: int = 0) -> Any:
        t = type(v)
        if t in _PLAIN_SET:
            return v
        if depth > MAX_DEPTH:
            raise CodecError("unsupported", f"{_at(where)}: nested deeper than {MAX_DEPTH}")
        d = depth + 1
        if t is list:
            self.mutable(v, where)
            if set(map(type, v)) <= _PLAIN_SET:
                return v
            return [self.value(x, where, d) for x in v]
        if t is dict:
            self.mutable(v, where)
            if set(map(type, v)) <= _PLAIN_SET and set(map(type, v.values())) <= _PLAIN_SET:
                return v
            return {self.value(k, where, d): self.value(x, where, d) for k, x in v.items()}
        if t is tuple:
            return self.ext(_TUPLE, [self.value(x, where, d) for x in v])
        if t is set or t is frozenset:
            if t is set:
                self.mutable(v, where)
            items = [self.value(x, where, d) for x in _ordered(v)]
            return self.ext(_SET if t is set else _FROZENSET, items)
        if t is OrderedDict:
            self.mutable(v, where)
            return self.ext(_ORDERED, {self.value(k, where, d): self.value(x, where, d)
                                       for k, x in v.items()})
        if t is deque:
            self.mutable(v, where)
            return self.ext(_DEQUE, [v.maxlen, [self.value(x, where, d) for x in v]])
        if t is np.ndarray:
            self.mutable(v, where)
            dtype = v.dtype.newbyteorder("<") if v.dtype.byteorder == ">" else v.dtype
            if dtype.str not in DTYPES:
                raise CodecError("unsupported", f"{_at(where)}: array of dtype {v.dtype}")
            if v.size >= _NARROW_FROM and dtype.kind in "biu":
                narrowed = _narrow(v)
                if narrowed is not None:
                    return self.ext(_ARRAY, [dtype.str, list(v.shape), *narrowed])
            if v.size >= _SHUFFLE_FROM and dtype.kind == "f":
                return self.ext(_ARRAY, [dtype.str, list(v.shape), _shuffled(v, dtype),
                                         "shuffle"])
            data = np.ascontiguousarray(v, dtype=dtype).tobytes()
            return self.ext(_ARRAY, [dtype.str, list(v.shape), data])
        if isinstance(v, np.generic) and t.__module__ == "numpy":
            dtype = v.dtype.newbyteorder("<") if v.dtype.byteorder == ">" else v.dtype
            if dtype.str not in DTYPES:
                raise CodecError("unsupported", f"{_at(where)}: numpy scalar of dtype {v.dtype}")
            return self.ext(_SCALAR, [dtype.str, np.asarray(v, dtype=dtype).tobytes()])
        if t is types.MethodType or t is types.BuiltinMethodType:
            owner = getattr(v, "__self__", None)
            if id(owner) in self.busy:
                raise CodecError("unsupported",
                                 f"{_at(where)}: a method of an object being encoded")
            if type(owner) not in self.allowed:
                raise CodecError("unsupported",
                                 f"{_at(where)}: a method of a {type(owner).__name__}")
            index = self.obj(owner, where)
            return self.ext(_METHOD, [index, self.method_name(v, owner, where)])
        if t in self.allowed:
            return self.ext(_REF, self.obj(v, where))
        raise CodecError("unsupported", f"{_at(where)}: a {t.__module__}.{t.__qualname__} is not "
                         "an allowed class (detectors/codec.py)")

    @staticmethod
    def method_name(method: Any, owner: Any, where: str | tuple[type, str]) -> str:
        name = getattr(method, "__name__", None)
        if not _valid_field(name) or getattr(owner, str(name), None) != method:
            raise CodecError("unsupported",
                             f"{_at(where)}: a method that is not its owner's {name}")
        return str(name)

    def obj(self, o: Any, where: str | tuple[type, str]) -> int:
        key = id(o)
        found = self.index.get(key)
        if found is not None:
            return found
        cls = type(o)
        cls_name = self.allowed[cls]
        if key in self.busy:
            raise CodecError("unsupported", f"{_at(where)}: reference cycle through {cls_name}")
        self.busy.add(key)
        self.alive.append(o)
        adapter = _build_facts(cls)[0]
        if adapter is not None:
            names, raw = adapter.fields(o)
        else:
            names, raw = self.plain_fields(o, cls_name)
        values = []
        plain = _PLAIN_SET
        for name, v in zip(names, raw, strict=True):
            t = type(v)
            if t in plain:
                values.append(v)
            elif (t is types.MethodType or t is types.BuiltinMethodType) and (
                    getattr(v, "__self__", None) is o):
                at = (cls, name)
                if adapter is not None:
                    raise CodecError("unsupported", f"{_at(at)}: own method in an adapted class")
                values.append(self.ext(_OWN, self.method_name(v, o, at)))
            else:
                values.append(self.value(v, (cls, name)))
        shape: int | list[Any] | None = self.shapes.get((cls_name, names))
        if shape is None:  # its first entry: the shape whole
            self.shapes[cls_name, names] = len(self.shapes)
            shape = [cls_name, list(names)]
        self.busy.discard(key)
        index = self.index[key] = self.objects
        self.objects += 1
        self.emit(self.pack([shape, values]))
        return index

    @staticmethod
    def plain_fields(o: Any, cls_name: str) -> tuple[tuple[str, ...], list[Any]]:
        cls = type(o)
        reduces, getstate, slots, descriptors = _plain_class(cls)
        if reduces:
            raise CodecError("unsupported", f"{cls_name} defines __reduce__: register an "
                             "adapter in detectors/codec.py")
        if getstate:
            state = o.__getstate__()
            if not (isinstance(state, dict) and all(_valid_field(k) for k in state)):
                raise CodecError("unsupported", f"{cls_name}.__getstate__ does not return a "
                                 "dict of fields: register an adapter in detectors/codec.py")
            return tuple(state), list(state.values())
        if not slots:
            state = getattr(o, "__dict__", None)
            if state is not None and descriptors.isdisjoint(state):
                names = tuple(state)  # what getattr reads, in the dict's order
                if not _VALID_FIELDS.issuperset(names):
                    for n in names:
                        if not _valid_field(n):
                            raise CodecError("unsupported", f"{cls_name}: field {n!r}")
                return names, list(state.values())
        read = _slot_reader(cls, slots)
        if read is not None:
            try:
                values = read(o)
            except AttributeError:  # a slot not set: the fields that are, below
                pass
            else:
                return tuple(slots), list(values)
        fields = [s for s in slots if hasattr(o, s)]
        fields += [n for n in getattr(o, "__dict__", ()) if n not in fields]
        for n in fields:
            if not _valid_field(n):
                raise CodecError("unsupported", f"{cls_name}: field {n!r}")
        return tuple(fields), [getattr(o, n) for n in fields]


_SLOT_READERS: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {}


def _slot_reader(cls: type, slots: list[str]) -> Callable[[Any], tuple[Any, ...]] | None:
    """For a class of slots alone (no ``__dict__``) whose names are all valid fields: one
    call that reads every slot, in order (``AttributeError`` if one is not set). None
    for any other class. Once per class."""
    if cls in _SLOT_READERS:
        return _SLOT_READERS[cls]
    read: Callable[[Any], tuple[Any, ...]] | None = None
    if slots and not _has_dict(cls) and all(_valid_field(n) for n in slots):
        getter = operator.attrgetter(*slots)
        read = getter if len(slots) > 1 else (lambda o: (getter(o),))
    _SLOT_READERS[cls] = read
    return read


def _ordered(items: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(items)  # the same bytes for the same set
    except TypeError:
        return list(items)


def encode(root: Any) -> bytes:
    """The payload of ``root`` and everything reachable from it (see the module docs).

    Raises ``CodecError`` (reason ``unsupported``) for a value the format cannot hold.
    """
    pieces: list[bytes] = []
    encode_to(root, pieces.append)
    return b"".join(pieces)


#: ``encode_to`` hands on pieces of at least this many bytes (the last one excepted).
PIECE_BYTES = 1 << 20


def encode_to(root: Any, write: Callable[[bytes], object], piece_bytes: int | None = None
              ) -> int:
    """``encode(root)`` handed to ``write`` in pieces, in order, as the objects are
    walked: each piece ``piece_bytes`` (default ``PIECE_BYTES``) or more (the last one
    may be shorter); joined, they are ``encode(root)``. The walk holds one piece, not
    the payload; the pieces are the same, byte for byte, for the same ``root`` and
    ``piece_bytes``. Returns the payload's size in bytes.

    Raises ``CodecError`` (reason ``unsupported``) for a value the format cannot hold;
    ``write`` has been given the pieces before it then, not the rest.
    """
    written = 0

    def counted(piece: bytes) -> None:
        nonlocal written
        written += len(piece)
        write(piece)

    enc = _Encoder(counted, PIECE_BYTES if piece_bytes is None else piece_bytes)
    enc.emit(MAGIC + enc.pack({"version": FORMAT_VERSION, "fingerprint": fingerprint()}))
    with _collector_paused():
        top = enc.value(root, "root")
    enc.emit(enc.pack([None, top]))
    enc.flush()
    return written


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a bank is walked or built: the objects
    made are containers that all live (decode) or short-lived tuples (encode), yet each
    full collection would walk every object of the process, the other partitions' banks
    included (a fifth of a restore's time with 50,000 monitors alive). Cycles made
    meanwhile are collected after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- decoding -------------------------------------------------------------------------

class _Own:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_SHARE_FROM = 16  # lists shorter than this keep their strings as decoded


class _Decoder:
    def __init__(self) -> None:
        self.objects: list[Any] = []
        self.depth = 0
        self.own_made = 0  # own-method markers read; each must be an object's field

    def unpacker(self, source: _Source, max_item_bytes: int) -> msgpack.Unpacker:
        """Reads ``source`` a megabyte at a time: a state of hundreds of megabytes is
        never whole in the unpacker's buffer, which holds one item at most."""
        return msgpack.Unpacker(source, raw=False, strict_map_key=False, use_list=True,
                                ext_hook=self.ext, list_hook=self.shared,
                                read_size=min(READ_BYTES, max_item_bytes),
                                max_buffer_size=max_item_bytes)

    @staticmethod
    def shared(items: list[Any]) -> list[Any]:
        """A long list of strings with its equal items made one object (``sys.intern``,
        as a live categorical window holds them): a window of 1,000 values of a few
        categories takes 8 bytes a value, not ~55."""
        if len(items) >= _SHARE_FROM and type(items[0]) is str:
            try:
                items[:] = map(sys.intern, items)  # one C loop; a non-str item raises
            except TypeError:  # a mixed list (nothing assigned yet): its strings alone
                items[:] = [sys.intern(v) if type(v) is str else v for v in items]
        return items

    def nested(self, data: bytes) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise CodecError("schema", f"nested deeper than {MAX_DEPTH}")
            return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True,
                                   ext_hook=self.ext, list_hook=self.shared)
        finally:
            self.depth -= 1

    def ext(self, code: int, data: bytes) -> Any:
        v = self.nested(data)
        if code == _TUPLE and type(v) is list:
            return tuple(v)
        if code == _SET and type(v) is list:
            return set(v)
        if code == _FROZENSET and type(v) is list:
            return frozenset(v)
        if code == _ORDERED and type(v) is dict:
            return OrderedDict(v)
        if code == _DEQUE and type(v) is list and len(v) == 2 and type(v[1]) is list and (
                v[0] is None or (type(v[0]) is int and v[0] >= 0)):
            return deque(v[1], v[0])
        if code == _ARRAY and type(v) is list and len(v) == 3:
            return _array(*v)
        if code == _ARRAY and type(v) is list and len(v) == 4:
            return _widen(*v)
        if code == _SCALAR and type(v) is list and len(v) == 2:
            return _array(v[0], [], v[1])[()]
        if code == _REF and type(v) is int:
            if not 0 <= v < len(self.objects):
                raise CodecError("schema", f"reference to object {v} before it is defined")
            return self.objects[v]
        if code == _METHOD and type(v) is list and len(v) == 2 and type(v[0]) is int:
            if not 0 <= v[0] < len(self.objects):
                raise CodecError("schema", f"method of object {v[0]} before it is defined")
            return _method(self.objects[v[0]], v[1])
        if code == _OWN and type(v) is str:
            self.own_made += 1
            return _Own(v)
        raise CodecError("schema", f"extension type {code} with a bad payload")


def _array(dtype: Any, shape: Any, data: Any) -> Any:
    if not (type(dtype) is str and dtype in DTYPES):
        raise CodecError("schema", f"array dtype {dtype!r} is not allowed")
    if not (type(shape) is list and len(shape) <= MAX_NDIM
            and all(type(n) is int and n >= 0 for n in shape) and type(data) is bytes):
        raise CodecError("schema", "bad array shape or data")
    kind, native = _DTYPE_OF[dtype]
    if math.prod(shape) * kind.itemsize != len(data):
        raise CodecError("schema", f"array of shape {shape} and dtype {dtype} does not fit "
                         f"{len(data)} bytes")
    return np.frombuffer(data, dtype=kind).reshape(shape).astype(native)


def _widen(dtype: Any, shape: Any, data: Any, stored: Any) -> Any:
    """An array written by ``_narrow`` (its items read in ``stored`` and made ``dtype``)
    or ``_shuffled`` (``stored`` is ``"shuffle"``)."""
    if not (type(dtype) is str and dtype in DTYPES and type(shape) is list
            and len(shape) <= MAX_NDIM and all(type(n) is int and n >= 0 for n in shape)
            and type(data) is bytes):
        raise CodecError("schema", "bad narrowed array")
    kind, native = _DTYPE_OF[dtype]
    size = math.prod(shape)
    if stored == "shuffle" and kind.kind == "f":
        if len(data) != size * kind.itemsize:
            raise CodecError("schema", f"{size} floats do not fit {len(data)} bytes")
        planes = np.frombuffer(data, np.uint8).reshape(kind.itemsize, size)
        return planes.T.copy().view(kind).reshape(shape).astype(native, copy=False)
    if stored == "bits" and kind.kind == "b":
        if len(data) != (size + 7) // 8:
            raise CodecError("schema", f"{size} bools do not fit {len(data)} bytes")
        bits = np.unpackbits(np.frombuffer(data, np.uint8), count=size, bitorder="little")
        return bits.astype(native).reshape(shape)
    if not (type(stored) is str and stored in DTYPES and kind.kind in "iu"
            and _DTYPE_OF[stored][0].kind in "iu"
            and _DTYPE_OF[stored][0].itemsize < kind.itemsize):
        raise CodecError("schema", f"array of {dtype} stored as {stored!r}")
    return _array(stored, shape, data).astype(native)


#: Float arrays of at least this many items are written byte-shuffled (``_shuffled``).
_SHUFFLE_FROM = 64


def _shuffled(v: Any, dtype: np.dtype[Any]) -> bytes:
    """The bytes of a float array (little-endian, C order) grouped by their place in the
    item: every item's first byte, then every item's second, ... (the shuffle filter of
    HDF5 and Blosc). Sign and exponent bytes, alike across a feature's values, then sit
    together: Zstandard makes 16 % fewer bytes of a bank at the same level and, at level
    1, 12 % fewer than unshuffled at level 3 in half the time (bench/state.py's banks;
    ``stream.state.ZSTD_LEVEL``). Lossless: every bit comes back (NaN payloads too)."""
    items = np.ascontiguousarray(v, dtype=dtype).reshape(-1)
    return items.view(np.uint8).reshape(items.size, dtype.itemsize).T.tobytes()


#: Integer and bool arrays of at least this many items are written narrower when they can
#: be (a calibration's bins: int64 values under 64; a missing-rate window of bools).
_NARROW_FROM = 64
_NARROWER = [np.dtype(t) for t in ("|u1", "|i1", "<u2", "<i2", "<u4", "<i4")]


def _narrow(v: Any) -> tuple[bytes, str] | None:
    """The items of an int or bool array in fewer bytes, and how they are stored."""
    if v.dtype.kind == "b":
        return np.packbits(v.reshape(-1), bitorder="little").tobytes(), "bits"
    low, high = int(v.min()), int(v.max())
    for t in _NARROWER:
        if t.itemsize >= v.dtype.itemsize:
            return None
        info = np.iinfo(t)
        if info.min <= low and high <= info.max:
            return np.ascontiguousarray(v, dtype=t).tobytes(), t.str
    return None


#: Each allowed dtype (little-endian) and its native-order twin, made once.
_DTYPE_OF = {name: (np.dtype(name), np.dtype(name).newbyteorder("=")) for name in DTYPES}


def _method(owner: Any, name: Any) -> Any:
    if not _valid_field(name):
        raise CodecError("schema", f"bad method name {name!r}")
    attr = getattr(type(owner), name, None)
    if not (inspect.isfunction(attr) or inspect.ismethoddescriptor(attr)):
        raise CodecError("schema", f"{_name(type(owner))} has no method {name}")
    return getattr(owner, name)


def decode(data: bytes, expect: type[T]) -> T:
    """The object of type ``expect`` that ``encode`` wrote into ``data``.

    Raises ``CodecError`` (never anything else) when the bytes are not such a payload.
    """
    if type(data) is not bytes:
        raise CodecError("format", "not a streamdrift detector-state payload (bad magic)")
    return decode_from(io.BytesIO(data).read, expect, max(len(data), 1))


#: ``decode_from``'s default bound on one item of a payload (an object entry with its
#: arrays: a few KB in a bank), and the bytes it asks ``read`` for a call.
MAX_ITEM_BYTES = 1 << 28
READ_BYTES = 1 << 20


class _Source:
    """``read`` as msgpack's file-like, which keeps the first exception ``read`` raised."""

    __slots__ = ("_read", "failure")

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.failure: BaseException | None = None

    def read(self, n: int) -> bytes:
        try:
            return self._read(n)
        except BaseException as exc:
            self.failure = exc
            raise


def decode_from(read: Callable[[int], bytes], expect: type[T],
                max_item_bytes: int | None = None) -> T:
    """``decode`` of the payload that ``read(n)`` hands on in order (up to ``n`` bytes a
    call, ``b""`` at its end), never held whole: each item (an object entry) is built
    as soon as it is read (a restore decompresses the changelog's state into it a
    megabyte at a time). ``read`` is called until it returns ``b""``: bytes after the
    payload are refused.

    Raises ``CodecError`` (reason ``corrupt`` for an item over ``max_item_bytes``, by
    default ``MAX_ITEM_BYTES``) when the bytes are not such a payload, and what ``read``
    raises, unchanged.
    """
    source = _Source(read)
    limit = MAX_ITEM_BYTES if max_item_bytes is None else max_item_bytes
    try:
        with _collector_paused():
            root = _decode(source, limit)
    except CodecError:
        raise
    except Exception as exc:  # whatever crafted bytes make msgpack or numpy raise
        if source.failure is not None:
            raise source.failure from None
        if isinstance(exc, msgpack.OutOfData):
            raise CodecError("truncated", "the payload ends early") from None
        raise CodecError("corrupt", f"{type(exc).__name__}: {exc}") from None
    if type(root) is not expect:
        raise CodecError("schema", f"holds a {type(root).__name__}, not a {expect.__name__}")
    return root


def _decode(source: _Source, max_item_bytes: int) -> Any:
    magic = source.read(len(MAGIC))
    while len(magic) < len(MAGIC) and (more := source.read(len(MAGIC) - len(magic))):
        magic += more
    if magic != MAGIC:
        raise CodecError("format", "not a streamdrift detector-state payload (bad magic)")
    dec = _Decoder()
    unpacker = dec.unpacker(source, max_item_bytes)
    header = unpacker.unpack()
    if type(header) is not dict or header.get("version") != FORMAT_VERSION:
        version = header.get("version") if type(header) is dict else None
        raise CodecError("format", f"codec version {version!r}, this streamdrift reads "
                         f"version {FORMAT_VERSION} only")
    if header.get("fingerprint") != fingerprint():
        raise CodecError("format", "written by other detectors code (fingerprint differs): "
                         "a new warm-up")
    allowed = allowed_classes()
    shapes: list[tuple[type, tuple[str, ...], Callable[[list[Any]], Any]]] = []
    append = dec.objects.append
    while True:
        made = dec.own_made
        entry = unpacker.unpack()
        if not (type(entry) is list and len(entry) == 2):
            raise CodecError("schema", "bad object entry")
        shape, values = entry
        if shape is None:  # the root: the last item
            break
        if type(shape) is list:  # a shape's first entry: the shape whole
            shapes.append(_shape(shape, allowed))
            shape = len(shapes) - 1
        if not (type(shape) is int and 0 <= shape < len(shapes) and type(values) is list):
            raise CodecError("schema", "bad object entry")
        cls, fields, build = shapes[shape]
        if len(values) != len(fields):
            raise CodecError("schema", f"{_name(cls)}: {len(values)} values for "
                             f"{len(fields)} fields")
        if dec.own_made == made:
            append(build(values))
            continue
        if dec.own_made - made != sum(isinstance(v, _Own) for v in values):
            # markers read, each must be one of the fields
            raise CodecError("schema", f"{_name(cls)}: an own method inside a container")
        append(_build_with_methods(cls, fields, values))
    root = values
    if dec.own_made != made:
        raise CodecError("schema", "an own method outside an object")
    if unpacker.read_bytes(1):
        raise CodecError("corrupt", "bytes after the payload")
    return root


def _shape(shape: list[Any], allowed: dict[str, type]
           ) -> tuple[type, tuple[str, ...], Callable[[list[Any]], Any]]:
    """A shape given by its first entry, checked: its class, field names, and how an entry
    of it without own-method markers is built (``_builder``)."""
    if not (len(shape) == 2 and type(shape[1]) is list):
        raise CodecError("schema", "bad shape")
    name, fields = shape
    cls = allowed.get(name) if type(name) is str else None
    if cls is None:
        raise CodecError("schema", f"class {name!r} is not allowed")
    if len(set(fields)) != len(fields) or not all(type(f) is str for f in fields):
        raise CodecError("schema", f"{name}: bad field names")
    adapter = _adapter(cls)
    if adapter is None:
        if not all(_valid_field(f) for f in fields):
            raise CodecError("schema", f"{name}: bad field names")
        slots = _slots(cls)
        if not _has_dict(cls) and not set(fields) <= set(slots):
            raise CodecError("schema", f"{name}: fields {sorted(set(fields) - set(slots))} "
                             "are not slots of the class")
    return cls, tuple(fields), _builder(cls, tuple(fields))


def _has_dict(cls: type) -> bool:
    return any("__dict__" in (k.__dict__.get("__slots__", ("__dict__",))
                              if k is not object else ()) for k in cls.__mro__)


_BUILD: dict[type, tuple[_Adapter | None, bool]] = {}


def _build_facts(cls: type) -> tuple[_Adapter | None, bool]:
    """The class's adapter, and whether it sets its own state (``__setstate__``)."""
    found = _BUILD.get(cls)
    if found is None:
        found = _BUILD[cls] = (_adapter(cls),
                               _own(cls, "__getstate__") and _own(cls, "__setstate__"))
    return found


def _builder(cls: type, fields: tuple[str, ...]) -> Callable[[list[Any]], Any]:
    """How an entry of one shape without own-method markers becomes its object, the
    choices made once per shape rather than per object (~16 objects a monitor)."""
    adapter, sets_state = _build_facts(cls)
    new, setattr_ = object.__new__, object.__setattr__
    if adapter is not None:
        def build(values: list[Any]) -> Any:
            return adapter.build(cls, dict(zip(fields, values, strict=True)))
    elif sets_state:
        def build(values: list[Any]) -> Any:
            obj: Any = new(cls)
            obj.__setstate__(dict(zip(fields, values, strict=True)))
            return obj
    else:
        def build(values: list[Any]) -> Any:
            obj: Any = new(cls)
            for k, v in zip(fields, values, strict=True):
                setattr_(obj, k, v)
            return obj
    return build


def _build_with_methods(cls: type, fields: tuple[str, ...], values: list[Any]) -> Any:
    """The object of an entry whose values hold own-method markers (an entry without any
    is built by its shape's ``_builder``): the other fields first, then each marked
    field bound to the object's own method of that name."""
    adapter, sets_state = _build_facts(cls)
    if adapter is not None:
        raise CodecError("schema", f"{_name(cls)}: own method in an adapted class")
    obj: Any = object.__new__(cls)
    state = dict(zip(fields, values, strict=True))
    own = {k: v.name for k, v in state.items() if type(v) is _Own}
    for k in own:
        del state[k]
    if sets_state:
        obj.__setstate__(state)
    else:
        for k, v in state.items():
            object.__setattr__(obj, k, v)
    for k, name in own.items():
        object.__setattr__(obj, k, _method(obj, name))
    return obj
