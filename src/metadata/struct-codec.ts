/**
 * `google.protobuf.Struct` and `google.protobuf.Any` on the wire, through protobufjs.
 *
 * Decoding uses protobufjs' reflected `google/protobuf/struct.proto` (it verifies UTF-8, refuses
 * truncated lengths, caps message nesting at protoc's 100 and never writes `__proto__`). Encoding
 * drives protobufjs' `Writer` directly because Istio's value must be byte-identical to C++'s
 * deterministic serialization (map entries sorted bytewise by key, P `extensions/common/metadata_object.cc`
 * `serializeToStringDeterministic`), while protobufjs' generated encoder iterates `Object.keys`, which puts
 * integer-like keys first. Encoding runs once per process (STYLE §5), so it is not hot.
 */
import protobuf from 'protobufjs';

/** A decoded Struct value: Istio only sends strings and nested structs, but a peer may send anything. */
export type StructValue = string | number | boolean | null | StructFields | readonly StructValue[];

/** The fields of a decoded Struct (a null-prototype object, so peer keys cannot shadow `Object.prototype`). */
export interface StructFields {
  readonly [key: string]: StructValue;
}

/** What {@link encodeStruct} accepts: strings and nested string structs, all that Istio's MX payload holds. */
export interface EncodableStruct {
  readonly [key: string]: string | EncodableStruct;
}

/** Type URL of a Struct packed in an Any (the TCP MX frame). */
export const STRUCT_TYPE_URL = 'type.googleapis.com/google.protobuf.Struct';

const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto') as protobuf.INamespace);
root.addJSON((protobuf.common.get('google/protobuf/any.proto') as { nested: Record<string, protobuf.AnyNestedObject> }).nested);
const StructType = root.lookupType('google.protobuf.Struct');
const AnyType = root.lookupType('google.protobuf.Any');

/** Why bytes could not be turned into a Struct. */
export type StructFailure = 'not_struct' | 'too_deep';

/** The outcome of {@link decodeStruct}: never an exception. */
export type StructDecodeResult =
  | { readonly ok: true; readonly fields: StructFields }
  | { readonly ok: false; readonly reason: StructFailure; readonly detail: string };

interface PbValue {
  kind?: string;
  stringValue?: string;
  numberValue?: number;
  boolValue?: boolean;
  nullValue?: number;
  structValue?: PbStruct;
  listValue?: { values?: PbValue[] };
}
interface PbStruct {
  fields?: Record<string, PbValue>;
}

/**
 * Decode serialized Struct bytes, accepting any field order. `maxDepth` bounds struct/list nesting
 * (the outer Struct is depth 1; Istio's payload is at most 2 deep: the node and LABELS).
 */
export function decodeStruct(bytes: Uint8Array, maxDepth: number): StructDecodeResult {
  let msg: PbStruct;
  try {
    msg = StructType.decode(bytes) as unknown as PbStruct;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // protobufjs throws "max depth exceeded" past protoc's recursion limit; a stack overflow is the same story.
    if (message.includes('max depth') || err instanceof RangeError && message.includes('call stack')) {
      return { ok: false, reason: 'too_deep', detail: message };
    }
    return { ok: false, reason: 'not_struct', detail: message };
  }
  const out = convertStruct(msg, 1, maxDepth);
  if (out === TOO_DEEP) return { ok: false, reason: 'too_deep', detail: `nesting deeper than ${maxDepth}` };
  return { ok: true, fields: out };
}

const TOO_DEEP = Symbol('too-deep');

function convertStruct(msg: PbStruct, depth: number, maxDepth: number): StructFields | typeof TOO_DEEP {
  if (depth > maxDepth) return TOO_DEEP;
  const out: Record<string, StructValue> = Object.create(null) as Record<string, StructValue>;
  const fields = msg.fields;
  if (fields) {
    for (const key of Object.keys(fields)) {
      const v = convertValue(fields[key]!, depth, maxDepth);
      if (v === TOO_DEEP) return TOO_DEEP;
      out[key] = v;
    }
  }
  return out;
}

function convertValue(v: PbValue, depth: number, maxDepth: number): StructValue | typeof TOO_DEEP {
  // `kind` is protobufjs' virtual oneof field; the plain properties have prototype defaults ("" etc.).
  switch (v.kind) {
    case 'stringValue':
      return v.stringValue ?? '';
    case 'structValue':
      return convertStruct(v.structValue ?? {}, depth + 1, maxDepth);
    case 'listValue': {
      if (depth + 1 > maxDepth) return TOO_DEEP;
      const list: StructValue[] = [];
      for (const item of v.listValue?.values ?? []) {
        const c = convertValue(item, depth + 1, maxDepth);
        if (c === TOO_DEEP) return TOO_DEEP;
        list.push(c);
      }
      return list;
    }
    case 'numberValue':
      return v.numberValue ?? 0;
    case 'boolValue':
      return v.boolValue ?? false;
    default:
      // null_value, or a Value with no kind set (proto3 treats both as "null").
      return null;
  }
}

// Field tags: (field number << 3) | wire type 2 (length-delimited).
const TAG_STRUCT_FIELDS = 0x0a; // Struct.fields (map entry)
const TAG_ENTRY_KEY = 0x0a; // map entry key
const TAG_ENTRY_VALUE = 0x12; // map entry value
const TAG_VALUE_STRING = 0x1a; // Value.string_value
const TAG_VALUE_STRUCT = 0x2a; // Value.struct_value
const TAG_ANY_TYPE_URL = 0x0a;
const TAG_ANY_VALUE = 0x12;

/** Keys in the order C++ deterministic serialization writes them: bytewise over UTF-8. */
function sortedKeys(obj: EncodableStruct): string[] {
  return Object.keys(obj).sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

function writeStructFields(w: protobuf.Writer, obj: EncodableStruct): void {
  for (const key of sortedKeys(obj)) {
    const value = obj[key]!;
    w.uint32(TAG_STRUCT_FIELDS).fork();
    w.uint32(TAG_ENTRY_KEY).string(key);
    w.uint32(TAG_ENTRY_VALUE).fork();
    if (typeof value === 'string') {
      // An empty string is still written (`1a 00`), as C++ does for a set oneof member.
      w.uint32(TAG_VALUE_STRING).string(value);
    } else {
      // An empty struct is still written (`2a 00`): Istio always sends LABELS.
      w.uint32(TAG_VALUE_STRUCT).fork();
      writeStructFields(w, value);
      w.ldelim();
    }
    w.ldelim();
    w.ldelim();
  }
}

/** Serialize a Struct deterministically (map keys sorted bytewise), byte-identical to Istio's C++ encoder. */
export function encodeStruct(obj: EncodableStruct): Buffer {
  const w = protobuf.Writer.create();
  writeStructFields(w, obj);
  return Buffer.from(w.finish());
}

/** Pack serialized Struct bytes in a `google.protobuf.Any` (type URL first, as C++ writes field 1 then 2). */
export function encodeAnyStruct(structBytes: Uint8Array): Buffer {
  const w = protobuf.Writer.create();
  w.uint32(TAG_ANY_TYPE_URL).string(STRUCT_TYPE_URL);
  w.uint32(TAG_ANY_VALUE).bytes(structBytes);
  return Buffer.from(w.finish());
}

/** The outcome of {@link decodeAny}. */
export type AnyDecodeResult =
  | { readonly ok: true; readonly typeUrl: string; readonly value: Uint8Array }
  | { readonly ok: false; readonly detail: string };

/** Unpack a `google.protobuf.Any`; never throws. */
export function decodeAny(bytes: Uint8Array): AnyDecodeResult {
  try {
    const msg = AnyType.decode(bytes) as unknown as { type_url?: string; typeUrl?: string; value?: Uint8Array };
    return { ok: true, typeUrl: msg.typeUrl ?? msg.type_url ?? '', value: msg.value ?? new Uint8Array(0) };
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}
