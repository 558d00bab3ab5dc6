import { escapeControl } from '../../core/escape.ts';

/**
 * HTML built by a tagged template that escapes every value put into it, unless the value is
 * markup made here (an `Html`, or a list of them): names, phases and error messages come from
 * the nodes and are shown, never obeyed. A dozen lines, so no template library.
 */
export class Html {
  readonly markup: string;
  constructor(markup: string) {
    this.markup = markup;
  }
  toString(): string {
    return this.markup;
  }
}

type Value = Html | readonly Html[] | string | number | boolean | undefined | null;

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new Html(out);
}

/** Markup made elsewhere and escaped there (the timeline SVG). */
export function trusted(markup: string): Html {
  return new Html(markup);
}

function render(value: Value): string {
  if (value instanceof Html) return value.markup;
  if (Array.isArray(value)) return value.map((item: Html) => item.markup).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeControl(String(value)).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
