/**
 * Records whose keys come from outside (cluster, node, flag and placeholder names). A plain
 * object answers `__proto__`, `constructor` or `toString` with a built-in; these never do.
 */

/** An object with no prototype, holding `entries`: every key is an own key like any other. */
export function nameRecord<V>(entries: Readonly<Record<string, V>> = {}): Record<string, V> {
  return Object.assign(Object.create(null) as Record<string, V>, entries);
}

/** `record[key]` when the record holds `key` itself, else undefined. */
export function ownValue<V>(record: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
