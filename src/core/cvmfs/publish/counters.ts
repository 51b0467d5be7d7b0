// The 24 statistics counters of a catalog (doc §2.7): self_<field> for this catalog's own rows,
// subtree_<field> for everything in the nested catalogs below it. Every counter row must exist
// (the client refuses a catalog without them) and `cvmfs_swissknife check` recomputes them all.

export const COUNTER_FIELDS = [
  'regular', 'symlink', 'special', 'dir', 'nested', 'chunked', 'chunks', 'file_size', 'chunked_size', 'xattr', 'external', 'external_file_size',
] as const;

export type CounterField = (typeof COUNTER_FIELDS)[number];

export type Counts = Record<CounterField, number>;

export interface CatalogCounters {
  self: Counts;
  subtree: Counts;
}

export function zeroCounts(): Counts {
  return Object.fromEntries(COUNTER_FIELDS.map((field) => [field, 0])) as Counts;
}

/** a + sign·b, field by field. */
export function addCounts(a: Counts, b: Counts, sign: 1 | -1 = 1): Counts {
  return Object.fromEntries(COUNTER_FIELDS.map((field) => [field, a[field] + sign * b[field]])) as Counts;
}

/** What a nested catalog contributes to its parent's subtree counters: its own rows and everything below. */
export function totalCounts(counters: CatalogCounters): Counts {
  return addCounts(counters.self, counters.subtree);
}

/** The statistics rows: counter name → value. */
export function countersToRows(counters: CatalogCounters): Map<string, number> {
  const rows: [string, number][] = [];
  for (const field of COUNTER_FIELDS) rows.push([`self_${field}`, counters.self[field]], [`subtree_${field}`, counters.subtree[field]]);
  // In name order, as the real writer inserts them (from a std::map).
  return new Map(rows.sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Reads the statistics rows back; `where` names the catalog when one is missing. */
export function countersFromRows(rows: ReadonlyMap<string, number>, where: string): CatalogCounters {
  const read = (prefix: 'self' | 'subtree'): Counts =>
    Object.fromEntries(
      COUNTER_FIELDS.map((field) => {
        const value = rows.get(`${prefix}_${field}`);
        if (value === undefined) throw new Error(`${where} lacks the statistics counter ${prefix}_${field}, which every catalog of schema revision 5 or later must have`);
        return [field, value];
      }),
    ) as Counts;
  return { self: read('self'), subtree: read('subtree') };
}
