/**
 * The web view's session: the token the viewer logged in with, in a cookie the page's script
 * cannot read (HttpOnly), sent only over HTTPS (Secure), only by the controller's own pages
 * (SameSite=Strict) and only to the view's paths (Path=/ui). The server takes it on `viewer`
 * routes only, which change nothing, so a forged cross-site request could not act with it.
 */

const NAME = 'pke_view';
const PATH = '/ui';

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
