// What the staging codec gives back unchanged. A redelivery hands sinks the outputs decoded
// from the staged bytes; the first delivery hands them the transform's live values. They
// must be the same: a class with toJSON() once wrote `{"page":"HOME"}` on the first
// delivery and `{"page":"home","at":…}` after a kill, because v8.deserialize returns plain
// objects. So a value v8 would not return unchanged (prototype included) is refused at
// stage time, never discovered by a sink. BigInts and cycles do come back unchanged: they
// are kept (whether a sink can write them is the sink's concern, docs/sinks.md).
import { inspect } from 'node:util';

/** Built-in prototypes v8.serialize keeps (node's serializer restores Buffers and typed arrays as such). */
const KEPT: ReadonlySet<object> = new Set<object>([
  Date.prototype, RegExp.prototype, ArrayBuffer.prototype, DataView.prototype, Buffer.prototype,
  Number.prototype, String.prototype, Boolean.prototype, BigInt.prototype,
  Int8Array.prototype, Uint8Array.prototype, Uint8ClampedArray.prototype, Int16Array.prototype, Uint16Array.prototype,
  Int32Array.prototype, Uint32Array.prototype, Float32Array.prototype, Float64Array.prototype,
  BigInt64Array.prototype, BigUint64Array.prototype,
]);

/** `.name`, or `["odd key"]`: a property in a path. */
export const propertyPath = (k: string): string => (/^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`);

function className(v: object): string {
  const ctor = (Object.getPrototypeOf(v) as { constructor?: unknown } | null)?.constructor;
  return typeof ctor === 'function' && ctor.name !== '' ? ctor.name : '(anonymous)';
}

/** Thrown by encodeOutputs: output `index` of the batch's outputs cannot be staged faithfully. */
export class UnstageableOutputError extends Error {
  constructor(readonly index: number, readonly what: string) {
    super(`output ${index} cannot be staged: ${what}`);
  }
}

/**
 * What unfaithful() returns when the walk reaches `root`: the column layout serializes a
 * record's fields one by one, so a cycle back through the record would come back as a copy.
 */
export const BACK_TO_ROOT = 'a reference back to the output';

/**
 * What in `value` the staging codec would not give back unchanged, as "a function at
 * .handler", or undefined when it would give all of it back. Walks own enumerable
 * properties, array items, Map and Set entries; a cycle is followed once. `base` prefixes
 * the paths (a column's key); `root`: the record a column value belongs to. Symbol-keyed and non-enumerable properties are not an
 * output's data (v8 and JSON.stringify both skip them) and are not looked at: checking
 * them cost 20–80 ms per 250,000 records, a tenth of encoding them.
 */
export function unfaithful(value: unknown, base = '', root?: object): string | undefined {
  const seen = new Set<object>();
  const walk = (v: unknown, path: string): string | undefined => {
    const at = path === '' ? '' : ` at ${path}`;
    if (typeof v === 'function') return `a function${at}`;
    if (typeof v === 'symbol') return `a symbol${at}`;
    if (v === root && root !== undefined) return BACK_TO_ROOT;
    if (typeof v !== 'object' || v === null || seen.has(v)) return undefined;
    seen.add(v);
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto === Object.prototype || proto === Array.prototype) {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        const bad = walk(o[k], Array.isArray(o) && /^\d+$/.test(k) ? `${path}[${k}]` : `${path}${propertyPath(k)}`);
        if (bad !== undefined) return bad;
      }
      return undefined;
    }
    if (proto === Map.prototype || proto === Set.prototype) {
      let i = 0;
      for (const [k, item] of proto === Map.prototype ? (v as Map<unknown, unknown>) : [...(v as Set<unknown>)].map((x) => [x, undefined])) {
        const bad = walk(k, `${path}[entry ${i}]`) ?? walk(item, `${path}[entry ${i}].value`);
        if (bad !== undefined) return bad;
        i++;
      }
      return undefined;
    }
    if (proto !== null && KEPT.has(proto)) return undefined;
    if (v instanceof Error) return `an Error${at} (v8 keeps only its message and stack: return plain objects)`;
    if (proto === null) return `an object with a null prototype${at} (it would come back as a plain object: return plain objects)`;
    return `an instance of class ${className(v)}${at} (its prototype would be lost: return plain objects)`;
  };
  return walk(value, base);
}

/**
 * A value as at most 200 characters of util.inspect, which shows classes, functions,
 * BigInts and cycles: what the dead-letter sink gets for an output that cannot be staged
 * or that JSON cannot write.
 */
export function sketch(value: unknown): string {
  const text = inspect(value, { depth: 4, breakLength: Infinity });
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
