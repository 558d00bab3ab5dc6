/** The `message` of a Kubernetes Status object (how the API server answers errors), or the start of whatever came back. */
export function statusMessage(text: string): string {
  try {
    const status = JSON.parse(text) as { message?: unknown };
    if (typeof status.message === 'string') return status.message;
  } catch {
    // not JSON
  }
  return text.slice(0, 200) || '(empty body)';
}
