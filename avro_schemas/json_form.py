"""The contracts' JSON form of an event: what the event store keeps and what CLIs print and read.

``to_json(value)`` turns an Avro-decoded event (as ``EventCodec.decode`` yields it) into one line of
plain JSON; ``from_json(event_type, obj)`` is its inverse, driven by the event type's Avro schema, and
``event_from_json_line(line)`` reads the type from ``envelope.event_type`` first. The batch CLIs read and
write this form (``healthbus topics tail TOPIC --json`` prints it; ``healthbus quality check --input``
reads it), so ``from_json(t, json.loads(to_json(v))) == v`` holds for every event.

What each Avro type becomes:

==========================  ==========================================================================
Avro                        JSON form
==========================  ==========================================================================
record                      object, one member per field (in schema order)
``timestamp-millis`` long   ISO 8601 UTC string with milliseconds: ``"2026-11-01T08:00:00.000Z"``
``date`` int                ``"YYYY-MM-DD"``
``decimal`` bytes/fixed     string of the exact value, never a float: ``"12345.60"``
bytes, fixed                base64 (standard alphabet, padded)
enum                        the symbol: ``"HOSPITAL"``
union with null             the value or ``null``: no Avro union wrapping (``{"string": …}``)
array, map                  array, object
string, boolean             string, ``true``/``false``
int, long, float, double    number
==========================  ==========================================================================

Reading is a little more lenient than writing: a timestamp may carry any UTC offset (it is converted to
UTC; anything finer than a millisecond is truncated, as the Avro writer would), a decimal may be a JSON
integer, a float or double field may be a JSON integer, a missing field with a schema default takes the
default, and members the schema does not know are ignored (Avro schema resolution does the same with a
newer writer's fields). Everything else raises ``JsonFormError`` (a ``ValueError``) with a machine-readable
``code`` (``missing_field``, ``wrong_type``, ``out_of_range``, ``bad_timestamp``, ``bad_date``,
``bad_decimal``, ``bad_base64``, ``wrong_size``, ``unknown_enum``, ``no_union_branch``, ``bad_json``,
``unknown_event_type``) and ``field``, the path to the offending value (``envelope.occurred_at``,
``diagnoses[0].code``, ``details["k"]``; ``""`` for the event itself). Messages never quote the offending
value: it may be personal data.

``from_json`` compiles one converter per event type from the schema the first time it sees the type, so a
value is checked and converted without interpreting the schema again.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import decimal
import json
import struct
from collections.abc import Callable
from typing import Any

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_NoneType = type(None)


# -- Avro value → JSON form ----------------------------------------------------------------------
def timestamp_text(value: dt.datetime) -> str:
    """A timestamp in the JSON form: ``2026-11-01T08:00:00.000Z``."""
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return timestamp_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} has no JSON form")


def to_json(value: dict[str, Any]) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))


# -- JSON form → Avro value ----------------------------------------------------------------------
class _MapKey(str):
    """A path segment that is a map key (rendered ``["key"]``, not ``.key``)."""


class JsonFormError(ValueError):
    """A JSON value that is not the JSON form of an event of its type.

    ``code`` is stable and machine-readable; ``field`` is the dotted path to the offending value
    (``""``: the event itself)."""

    def __init__(self, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self._prefix = field
        self._segments: list[str | int] = []  # innermost first: appended while the error unwinds

    def at(self, segment: str | int) -> JsonFormError:
        self._segments.append(segment)
        return self

    @property
    def field(self) -> str:
        parts = [self._prefix] if self._prefix else []
        for segment in reversed(self._segments):
            if isinstance(segment, int):
                parts.append(f"[{segment}]")
            elif isinstance(segment, _MapKey):
                parts.append(f"[{json.dumps(str(segment), ensure_ascii=False)}]")
            else:
                parts.append(f".{segment}" if parts else segment)
        return "".join(parts)

    def __str__(self) -> str:
        return f"{self.field or '<event>'}: {self.code}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (JsonFormError, (self.code, self.message, self.field))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong_type(expected: str, value: Any) -> JsonFormError:
    return JsonFormError("wrong_type", f"expected {expected}, got {_json_type(value)}")


Converter = Callable[[Any], Any]


class _Node:
    """A compiled schema node. ``types`` set: the JSON value is the Avro value when its Python type is one
    of them (checked inline by records and arrays, no call); ``convert`` always works."""

    __slots__ = ("types", "convert", "expected")

    def __init__(self, convert: Converter, expected: str, types: frozenset[type] | None = None) -> None:
        self.convert = convert
        self.expected = expected
        self.types = types


def _checker(types: frozenset[type], expected: str) -> _Node:
    def convert(value: Any) -> Any:
        if type(value) in types:
            return value
        raise _wrong_type(expected, value)

    return _Node(convert, expected, types)


def _integer(low: int, high: int, expected: str) -> _Node:
    def convert(value: Any) -> int:
        if type(value) is not int:
            raise _wrong_type(expected, value)
        if not low <= value <= high:
            raise JsonFormError("out_of_range", f"outside the range of an Avro {expected}")
        return value

    return _Node(convert, expected)


def _double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise JsonFormError("out_of_range", "too large for a double") from None
    raise _wrong_type("number", value)


_FLOAT32 = struct.Struct("<f")


def _float(value: Any) -> float:
    number = _double(value)
    try:
        return _FLOAT32.unpack(_FLOAT32.pack(number))[0]  # what a float32 on the wire reads back as
    except OverflowError:
        raise JsonFormError("out_of_range", "too large for a float") from None


def _bytes(value: Any) -> bytes:
    if type(value) is not str:
        raise _wrong_type("base64 string", value)
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except ValueError:  # binascii.Error is one
        raise JsonFormError("bad_base64", "not standard padded base64") from None


def _fixed(size: int) -> Converter:
    def convert(value: Any) -> bytes:
        data = _bytes(value)
        if len(data) != size:
            raise JsonFormError("wrong_size", f"expected {size} bytes, got {len(data)}")
        return data

    return convert


def _timestamp(unit_us: int) -> Converter:
    """timestamp-millis (``unit_us`` 1000) or timestamp-micros (1): tz-aware UTC, truncated to the unit."""

    def convert(value: Any) -> dt.datetime:
        if type(value) is not str:
            raise _wrong_type("ISO 8601 timestamp string", value)
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            raise JsonFormError("bad_timestamp", "not an ISO 8601 date-time") from None
        tz = stamp.tzinfo
        if tz is not UTC:
            if tz is None:
                raise JsonFormError("bad_timestamp", "no UTC offset (write ...Z)")
            try:
                stamp = stamp.astimezone(UTC)
            except OverflowError:
                raise JsonFormError("bad_timestamp", "outside the representable range") from None
        if unit_us != 1 and stamp.microsecond % unit_us:
            stamp = stamp.replace(microsecond=stamp.microsecond - stamp.microsecond % unit_us)
        return stamp

    return convert


def _date(value: Any) -> dt.date:
    if type(value) is not str:
        raise _wrong_type("YYYY-MM-DD string", value)
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise JsonFormError("bad_date", "not a YYYY-MM-DD date")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise JsonFormError("bad_date", "not a YYYY-MM-DD date") from None


def _decimal(precision: int, scale: int, size: int | None) -> Converter:
    context = decimal.Context(prec=max(precision, 28))
    max_unscaled = 10**precision

    def convert(value: Any) -> decimal.Decimal:
        kind = type(value)
        if kind is str:
            try:
                number = decimal.Decimal(value)
            except decimal.InvalidOperation:
                raise JsonFormError("bad_decimal", "not a decimal number") from None
        elif kind is int:
            number = decimal.Decimal(value)
        else:
            raise _wrong_type("decimal string", value)
        if not number.is_finite():
            raise JsonFormError("bad_decimal", "not a finite number")
        if number.as_tuple().exponent < -scale:  # type: ignore[operator]
            raise JsonFormError("bad_decimal", f"more than {scale} digits after the point")
        if number and number.adjusted() >= precision - scale:  # before int(): "1E+999999999" stays cheap
            raise JsonFormError("bad_decimal", f"more than {precision} digits")
        unscaled = int(number.scaleb(scale, context))
        if abs(unscaled) >= max_unscaled:
            raise JsonFormError("bad_decimal", f"more than {precision} digits")
        if size is not None and (abs(unscaled) << 1).bit_length() > size * 8:
            raise JsonFormError("bad_decimal", f"does not fit {size} bytes")
        return context.create_decimal(unscaled).scaleb(-scale, context)  # as fastavro's reader builds it

    return convert


class _Compiler:
    """Turns one parsed schema into converters; named types are compiled once and shared."""

    PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")

    def __init__(self) -> None:
        self.named: dict[str, _Node] = {}
        self.named_schemas: dict[str, Any] = {}
        self.pending: dict[str, list[_Node | None]] = {}  # records being compiled (recursive references)

    def node(self, schema: Any) -> _Node:
        if isinstance(schema, str):
            return self._name(schema)
        if isinstance(schema, list):
            return self._union(schema)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            logical_node = self._logical(schema, kind, logical)
            if logical_node is not None:
                return logical_node
        if kind == "record" or kind == "error":
            return self._record(schema)
        if kind == "enum":
            return self._enum(schema)
        if kind == "fixed":
            self.named_schemas[schema["name"]] = schema
            node = _Node(_fixed(schema["size"]), f"base64 string of {schema['size']} bytes")
            self.named[schema["name"]] = node
            return node
        if kind == "array":
            return self._array(self.node(schema["items"]))
        if kind == "map":
            return self._map(self.node(schema["values"]))
        return self.node(kind)  # {"type": "string"} and friends

    def _name(self, name: str) -> _Node:
        if name == "null":
            return _checker(frozenset({_NoneType}), "null")
        if name == "boolean":
            return _checker(frozenset({bool}), "boolean")
        if name == "string":
            return _checker(frozenset({str}), "string")
        if name == "int":
            return _integer(_INT_MIN, _INT_MAX, "int")
        if name == "long":
            return _integer(_LONG_MIN, _LONG_MAX, "long")
        if name == "double":
            return _Node(_double, "number")
        if name == "float":
            return _Node(_float, "number")
        if name == "bytes":
            return _Node(_bytes, "base64 string")
        if name in self.named:
            return self.named[name]
        if name in self.pending:  # a record that refers to itself: resolve at call time
            cell = self.pending[name]

            def recursive(value: Any) -> Any:
                return cell[0].convert(value)  # type: ignore[union-attr]

            return _Node(recursive, "object")
        raise ValueError(f"unknown named type {name!r}")

    def _logical(self, schema: dict[str, Any], kind: str, logical: str) -> _Node | None:
        if logical == "timestamp-millis" and kind == "long":
            return _Node(_timestamp(1000), "ISO 8601 timestamp string")
        if logical == "timestamp-micros" and kind == "long":
            return _Node(_timestamp(1), "ISO 8601 timestamp string")
        if logical == "date" and kind == "int":
            return _Node(_date, "YYYY-MM-DD string")
        if logical == "decimal" and kind in ("bytes", "fixed"):
            size = schema["size"] if kind == "fixed" else None
            node = _Node(_decimal(schema["precision"], schema.get("scale", 0), size), "decimal string")
            if kind == "fixed":
                self.named_schemas[schema["name"]] = schema
                self.named[schema["name"]] = node
            return node
        if logical in ("time-millis", "time-micros", "local-timestamp-millis", "local-timestamp-micros", "uuid"):
            raise ValueError(f"logical type {logical!r} has no JSON form yet (avro_schemas/json_form.py)")
        return None  # an unknown logical type is its underlying type (the Avro spec says so; fastavro agrees)

    def _record(self, schema: dict[str, Any]) -> _Node:
        name = schema["name"]
        self.named_schemas[name] = schema
        cell: list[_Node | None] = [None]
        self.pending[name] = cell
        fields: list[tuple[str, frozenset[type] | None, Converter, str, Callable[[], Any] | None]] = []
        for field in schema["fields"]:
            child = self.node(field["type"])
            default = self._default_factory(field["type"], field["default"]) if "default" in field else None
            fields.append((field["name"], child.types, child.convert, child.expected, default))
        frozen = tuple(fields)

        def convert(obj: Any) -> dict[str, Any]:
            if not isinstance(obj, dict):
                raise _wrong_type("object", obj)
            out: dict[str, Any] = {}
            for field_name, types, field_convert, expected, default in frozen:
                try:
                    value = obj[field_name]
                except KeyError:
                    if default is None:
                        raise JsonFormError("missing_field", "required field is missing").at(field_name) from None
                    out[field_name] = default()
                    continue
                if types is not None:
                    if type(value) in types:
                        out[field_name] = value
                        continue
                    raise _wrong_type(expected, value).at(field_name)
                try:
                    out[field_name] = field_convert(value)
                except JsonFormError as exc:
                    exc._segments.append(field_name)
                    raise
            return out

        node = _Node(convert, "object")
        cell[0] = node
        del self.pending[name]
        self.named[name] = node
        return node

    def _enum(self, schema: dict[str, Any]) -> _Node:
        symbols = frozenset(schema["symbols"])
        self.named_schemas[schema["name"]] = schema

        def convert(value: Any) -> str:
            if type(value) is not str:
                raise _wrong_type("enum symbol string", value)
            if value not in symbols:
                raise JsonFormError("unknown_enum", f"not one of {sorted(symbols)}")
            return value

        node = _Node(convert, "enum symbol string")
        self.named[schema["name"]] = node
        return node

    def _array(self, items: _Node) -> _Node:
        types, item_convert, expected = items.types, items.convert, items.expected
        if types is not None:

            def convert(value: Any) -> list[Any]:
                if type(value) is not list:
                    raise _wrong_type("array", value)
                for index, item in enumerate(value):
                    if type(item) not in types:
                        raise _wrong_type(expected, item).at(index)
                return list(value)
        else:

            def convert(value: Any) -> list[Any]:
                if type(value) is not list:
                    raise _wrong_type("array", value)
                out = []
                for index, item in enumerate(value):
                    try:
                        out.append(item_convert(item))
                    except JsonFormError as exc:
                        exc._segments.append(index)
                        raise
                return out

        return _Node(convert, "array")

    def _map(self, values: _Node) -> _Node:
        value_convert = values.convert

        def convert(value: Any) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise _wrong_type("object", value)
            out = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise JsonFormError("wrong_type", "map keys are strings")
                try:
                    out[key] = value_convert(item)
                except JsonFormError as exc:
                    exc._segments.append(_MapKey(key))
                    raise
            return out

        return _Node(convert, "object")

    def _union(self, branches: list[Any]) -> _Node:
        nodes = [self.node(b) for b in branches]
        expected = " or ".join(n.expected for n in nodes)
        if all(n.types is not None for n in nodes):  # e.g. ["null", "string"]: a type check, inline
            return _checker(frozenset().union(*(n.types for n in nodes)), expected)  # type: ignore[arg-type]
        nullable = any(b == "null" for b in branches)
        others = [n for b, n in zip(branches, nodes) if b != "null"]
        if len(others) == 1:
            inner = others[0].convert

            def convert(value: Any) -> Any:
                return None if value is None else inner(value)

            return _Node(convert if nullable else inner, expected)

        def convert_any(value: Any) -> Any:
            if value is None and nullable:
                return None
            errors = []
            for node in others:  # the JSON form does not say the branch: the first that takes the value wins
                try:
                    return node.convert(value)
                except JsonFormError as exc:
                    errors.append(exc)
            deep = [e for e in errors if e.code != "wrong_type" or e._segments]
            if len(deep) == 1:  # one branch was the right shape and failed inside: that is the news
                raise deep[0]
            raise JsonFormError("no_union_branch", f"expected {expected}, got {_json_type(value)}")

        return _Node(convert_any, expected)

    # -- defaults: Avro's JSON encoding of a default → the decoded value ----------------------------
    def _default_factory(self, schema: Any, default: Any) -> Callable[[], Any]:
        value = self._decode_default(schema, default)
        if isinstance(value, (list, dict)):
            return lambda: copy.deepcopy(value)
        return lambda: value

    def _decode_default(self, schema: Any, default: Any) -> Any:
        if isinstance(schema, list):  # a union's default is of its first branch
            return self._decode_default(schema[0], default)
        if isinstance(schema, str):
            if schema in self.named_schemas:
                return self._decode_default(self.named_schemas[schema], default)
            if schema in ("bytes",):
                return default.encode("latin-1")
            if schema in ("float", "double"):
                return float(default)
            return default
        kind, logical = schema["type"], schema.get("logicalType")
        if logical == "timestamp-millis" and kind == "long":
            return _EPOCH + dt.timedelta(milliseconds=default)
        if logical == "timestamp-micros" and kind == "long":
            return _EPOCH + dt.timedelta(microseconds=default)
        if logical == "date" and kind == "int":
            return dt.date.fromordinal(default + _EPOCH_ORDINAL)
        if logical == "decimal" and kind in ("bytes", "fixed"):
            unscaled = int.from_bytes(default.encode("latin-1"), "big", signed=True)
            return decimal.Decimal(unscaled).scaleb(-schema.get("scale", 0))
        if kind in ("record", "error"):
            return {
                f["name"]: self._decode_default(f["type"], default[f["name"]] if f["name"] in default else f["default"])
                for f in schema["fields"]
            }
        if kind == "array":
            return [self._decode_default(schema["items"], item) for item in default]
        if kind == "map":
            return {k: self._decode_default(schema["values"], v) for k, v in default.items()}
        if kind == "fixed":
            return default.encode("latin-1")
        if kind == "enum":
            return default
        return self._decode_default(kind, default)


def compile_converter(parsed_schema: Any) -> Converter:
    """A JSON form → Avro value converter for one schema as fastavro's ``parse_schema`` returns it (named
    types by full name), e.g. ``EventSchema.parsed``."""
    return _Compiler().node(parsed_schema).convert


_CONVERTERS: dict[str, Converter] = {}


def converter_for(event_type: str) -> Converter:
    """The compiled converter of this checkout's schema of ``event_type`` (built once, then cached)."""
    converter = _CONVERTERS.get(event_type)
    if converter is None:
        from avro_schemas.schema_set import current_schemas

        schema = current_schemas().get(event_type)
        if schema is None:
            raise JsonFormError("unknown_event_type", "no schema for this event type")
        converter = _CONVERTERS[event_type] = compile_converter(schema.parsed)
    return converter


def from_json(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The Avro value (exactly as ``EventCodec.decode`` yields it) of an event of ``event_type`` in the JSON
    form. Raises ``JsonFormError`` with ``code`` and ``field`` when ``obj`` is not such an event."""
    return converter_for(event_type)(obj)


def event_from_json_line(line: str) -> tuple[str, dict[str, Any]]:
    """(event type, Avro value) of one line of the JSON form; the type is read from ``envelope.event_type``."""
    try:
        obj = json.loads(line)
    except ValueError as exc:  # json.JSONDecodeError, and UnicodeDecodeError from bytes
        raise JsonFormError(
            "bad_json", f"not JSON: {type(exc).__name__} at position {getattr(exc, 'pos', '?')}"
        ) from None
    if not isinstance(obj, dict):
        raise _wrong_type("object", obj)
    envelope = obj.get("envelope")
    if envelope is None:
        raise JsonFormError("missing_field", "required field is missing", "envelope")
    if not isinstance(envelope, dict):
        raise JsonFormError("wrong_type", f"expected object, got {_json_type(envelope)}", "envelope")
    event_type = envelope.get("event_type")
    if event_type is None:
        raise JsonFormError("missing_field", "required field is missing", "envelope.event_type")
    if type(event_type) is not str:
        raise JsonFormError("wrong_type", f"expected string, got {_json_type(event_type)}", "envelope.event_type")
    try:
        converter = converter_for(event_type)
    except JsonFormError as exc:
        raise JsonFormError(exc.code, exc.message, "envelope.event_type") from None
    return event_type, converter(obj)
