import { XMLParser, XMLValidator } from 'fast-xml-parser';

/** An SVG parsed as XML (fast-xml-parser): its rows, their bars, the critical path, as a reader of the file would find them. */

interface Element {
  [key: string]: unknown;
}

export interface ParsedTimeline {
  rows: { node: string; role: string; state: string; bars: { phase: string; outcome: string; critical: boolean; title: string }[] }[];
  waits: string[];
  failures: { phase: string; title: string }[];
  criticalLinks: number;
  label: string;
}

export function parseTimelineSvg(svg: string): ParsedTimeline {
  const valid = XMLValidator.validate(svg);
  if (valid !== true) throw new Error(`the SVG is not well-formed XML: ${JSON.stringify(valid.err)}`);
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    htmlEntities: true,
    isArray: (name) => ['g', 'rect', 'text', 'line'].includes(name),
  });
  const doc = parser.parse(svg) as { svg: Element & { g?: Element[]; line?: Element[] } };
  const root = doc.svg;
  if (root.xmlns !== 'http://www.w3.org/2000/svg') throw new Error('not an SVG document');
  const groups = root.g ?? [];
  const rows = groups
    .filter((g) => g.class === 'row')
    .map((g) => {
      const rects = (g.rect as Element[] | undefined) ?? [];
      return {
        node: String(g['data-node']),
        role: String(g['data-role']),
        state: String(g['data-state']),
        bars: rects
          .filter((r) => r.class === 'bar')
          .map((r) => ({
            phase: String(r['data-phase']),
            outcome: String(r['data-outcome']),
            critical: r['data-critical'] === 'true',
            title: String(r.title),
          })),
      };
    });
  const waits = groups
    .filter((g) => g.class === 'row')
    .flatMap((g) => ((g.rect as Element[] | undefined) ?? []).filter((r) => r.class === 'wait').map((r) => String(r.title)));
  const failures = groups
    .filter((g) => g.class === 'row')
    .flatMap((g) => ((g.g as Element[] | undefined) ?? []).filter((f) => f.class === 'failure'))
    .map((f) => ({ phase: String(f['data-phase']), title: String(f.title) }));
  const criticalLinks = (root.line ?? []).filter((l) => l.class === 'critical-path').length;
  return { rows, waits, failures, criticalLinks, label: String(root['aria-label']) };
}
