import { createHash } from 'node:crypto';

/**
 * Everything a page needs beyond its markup, inlined into it: air-gapped sites have no CDN,
 * and the executable carries these as strings. The Content-Security-Policy admits exactly these
 * (by hash) and requests to the controller itself.
 *
 * The script runs in the browser, not in Node, so it is kept as text (plain JavaScript, no
 * build step of its own); test/controller/web-view.test.ts runs it in a real Chromium.
 */

const STYLE = `
:root { color-scheme: light; --ink: #1d2433; --muted: #5b6474; --line: #e3e6eb; --ok: #3b9a5a; --bad: #d9483b; --run: #e0a21c; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, "DejaVu Sans", Helvetica, Arial, sans-serif; color: var(--ink); background: #fbfcfd; }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; padding: 10px 16px; background: var(--ink); color: #fff; }
header a { color: #fff; font-weight: 600; text-decoration: none; }
header .spacer { flex: 1; }
#live { font-size: 13px; padding: 2px 8px; border-radius: 10px; background: #3a4356; }
#live[data-state="live"] { background: var(--ok); }
#live[data-state="reconnecting"], #live[data-state="closed"] { background: var(--bad); }
button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 1px solid var(--line); background: #fff; color: var(--ink); cursor: pointer; }
main { padding: 12px 16px 32px; max-width: 1280px; margin: 0 auto; }
h1 { font-size: 22px; margin: 8px 0 12px; }
h2 { font-size: 17px; margin: 24px 0 8px; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 8px 20px; margin: 0; }
dl.facts div { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
dl.facts dt { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
dl.facts dd { margin: 2px 0 0; font-weight: 600; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
td.error { color: var(--bad); overflow-wrap: anywhere; max-width: 420px; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; font-weight: 600; background: var(--line); }
.state-ready { background: #dcefe2; color: #22643a; }
.state-failed { background: #f8dcd9; color: #9c2a20; }
.state-bootstrapping { background: #fbeecd; color: #7a5606; }
.timeline { overflow-x: auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
.timeline svg { display: block; max-width: 100%; height: auto; }
.login { max-width: 420px; margin: 48px auto; background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px; }
.login input { width: 100%; font: inherit; padding: 8px; margin: 8px 0 12px; border: 1px solid var(--line); border-radius: 6px; }
#login-message { color: var(--bad); min-height: 1.4em; }
.muted { color: var(--muted); }
@media (max-width: 720px) {
  table, thead, tbody, tr, td { display: block; }
  thead { display: none; }
  tr { border-bottom: 2px solid var(--line); padding: 6px 0; }
  td { border: 0; padding: 3px 10px; }
  td::before { content: attr(data-label) ": "; color: var(--muted); font-size: 12px; }
}
`;

const SCRIPT = `(() => {
  const form = document.getElementById('login');
  if (form) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const message = document.getElementById('login-message');
      message.textContent = 'Checking…';
      const token = String(new FormData(form).get('token') || '').trim();
      const answer = await fetch('/ui/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token }),
        credentials: 'same-origin',
      });
      if (answer.ok) {
        location.reload();
        return;
      }
      let text = 'login refused (' + answer.status + ')';
      try {
        text = (await answer.json()).error.message;
      } catch {}
      message.textContent = text;
    });
  }
  const logout = document.getElementById('logout');
  if (logout) {
    logout.addEventListener('click', async () => {
      await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin' });
      location.assign('/ui');
    });
  }
  const events = document.body.dataset.events;
  if (events) {
    const live = document.getElementById('live');
    const source = new EventSource(events);
    source.addEventListener('view', (event) => {
      const parts = JSON.parse(event.data);
      for (const [id, markup] of Object.entries(parts)) {
        const element = document.getElementById(id);
        if (element) element.innerHTML = markup;
      }
      document.body.dataset.updates = String(Number(document.body.dataset.updates || '0') + 1);
      live.dataset.state = 'live';
      live.textContent = 'live · ' + new Date().toLocaleTimeString();
    });
    source.addEventListener('error', () => {
      const closed = source.readyState === EventSource.CLOSED;
      live.dataset.state = closed ? 'closed' : 'reconnecting';
      live.textContent = closed ? 'disconnected: reload the page' : 'reconnecting…';
    });
  }
})();`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

export const PAGE_STYLE = STYLE;
export const PAGE_SCRIPT = SCRIPT;

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');
