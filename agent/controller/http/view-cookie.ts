/**
 * The web view's session: the token the viewer logged in with, in a cookie the page's script
 * cannot read (HttpOnly), sent only over HTTPS (Secure), only by the controller's own pages
 * (SameSite=Strict) and only to the view's paths (Path=/ui). The server takes it on the view's
 * own routes only (`viewer` routes under /ui), which change nothing, so a forged cross-site
 * request could not act with it, and no API route takes it.
 */

const NAME = 'pke_view';
const PATH = '/ui';

/** Whether a route takes the cookie in place of a bearer token. */
export function takesViewCookie(route: { access: string; path: string }): boolean {
  return route.access === 'viewer' && (route.path === PATH || route.path.startsWith(`${PATH}/`));
}

/** The token in a Cookie header, if the view's cookie is there. */
export function viewCookieToken(header: string | undefined): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === NAME) return value.join('=') || undefined;
  }
  return undefined;
}

export function viewCookie(token: string, maxAgeSeconds: number): string {
  return `${NAME}=${token}; Path=${PATH}; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; Secure; SameSite=Strict`;
}

export function clearedViewCookie(): string {
  return `${NAME}=; Path=${PATH}; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;
}
